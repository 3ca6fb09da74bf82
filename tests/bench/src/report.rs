//! Markdown tables: one row per figure, columns (a) direct, (b) HAProxy, (c) moat, then
//! moat/HAProxy and, for latencies, the deltas to direct in µs.

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    /// Higher is better (rates).
    Rate,
    /// Lower is better (memory, CPU cost).
    Cost,
    /// Lower is better, and deltas to (a) are shown in µs.
    Latency,
}

pub struct Row {
    pub name: String,
    pub kind: Kind,
    /// Indexed by target: 0 = a, 1 = b, 2 = c. `None` = not run / not applicable,
    /// `Some(Err)` = failed.
    pub vals: [Option<Result<f64, String>>; 3],
}

pub struct Report {
    pub headline: Vec<Row>,
    pub detail: Vec<Row>,
    pub notes: Vec<String>,
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(v: &Option<Result<f64, String>>) -> String {
    match v {
        None => "—".into(),
        Some(Ok(x)) => fmt_num(*x),
        Some(Err(_)) => "ERR".into(),
    }
}

fn ok(v: &Option<Result<f64, String>>) -> Option<f64> {
    match v {
        Some(Ok(x)) if x.is_finite() => Some(*x),
        _ => None,
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let d = b - a;
            if d >= 0.0 {
                format!("+{}", fmt_num(d))
            } else {
                fmt_num(d)
            }
        }
        _ => "—".into(),
    }
}

fn table(rows: &[Row], out: &mut String) {
    out.push_str("| Figure | (a) direct | (b) HAProxy TLS | (c) moat TLS | moat / HAProxy | moat − direct (µs) | HAProxy − direct (µs) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let (a, b, c) = (ok(&r.vals[0]), ok(&r.vals[1]), ok(&r.vals[2]));
        let ratio = match (b, c) {
            (Some(b), Some(c)) if b != 0.0 => format!("{:.2}×", c / b),
            _ => "—".into(),
        };
        let (dc, db) = if r.kind == Kind::Latency {
            (delta(a, c), delta(a, b))
        } else {
            ("".into(), "".into())
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            cell(&r.vals[0]),
            cell(&r.vals[1]),
            cell(&r.vals[2]),
            ratio,
            dc,
            db
        ));
    }
}

impl Report {
    pub fn markdown(&self, preamble: &str) -> String {
        let mut out = String::new();
        out.push_str(preamble);
        out.push_str("\n### Headline\n\n");
        table(&self.headline, &mut out);
        out.push_str("\nRates: higher is better (moat / HAProxy > 1 means moat is faster). Latency, memory: lower is better.\n");
        out.push_str("\n### Cost and details\n\n");
        table(&self.detail, &mut out);
        out.push_str("\nCPU µs per operation = utime+stime of the measured process (the broker for (a), the proxy for (b)/(c)) over the measurement window, divided by the operations completed in it.\n");
        let errs: Vec<String> = self
            .headline
            .iter()
            .chain(self.detail.iter())
            .flat_map(|r| {
                r.vals.iter().enumerate().filter_map(move |(i, v)| match v {
                    Some(Err(e)) => Some(format!("- {} / ({}): {}", r.name, ["a", "b", "c"][i], e)),
                    _ => None,
                })
            })
            .collect();
        if !errs.is_empty() || !self.notes.is_empty() {
            out.push_str("\n### Notes and errors\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
            for e in errs {
                out.push_str(&e);
                out.push('\n');
            }
        }
        out
    }
}
