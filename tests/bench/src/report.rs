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

/// One target's figure: a sample per round (the median is shown), or the last error.
#[derive(Default)]
pub struct Cell {
    pub samples: Vec<f64>,
    pub error: Option<String>,
}

impl Cell {
    pub fn push(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.samples.push(v);
        }
    }
    /// `None` = not run / not applicable, `Some(Err)` = failed in every round.
    pub fn value(&self) -> Shown {
        if self.samples.is_empty() {
            return self.error.clone().map(Err);
        }
        let mut v = self.samples.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(Ok(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }))
    }
    /// (max − min) / median, in %, when there are several samples.
    fn spread_pct(&self) -> Option<f64> {
        let med = match self.value() {
            Some(Ok(m)) if self.samples.len() > 1 && m != 0.0 => m,
            _ => return None,
        };
        let max = self.samples.iter().cloned().fold(f64::MIN, f64::max);
        let min = self.samples.iter().cloned().fold(f64::MAX, f64::min);
        Some((max - min) / med.abs() * 100.0)
    }
}

pub struct Row {
    pub name: String,
    pub kind: Kind,
    /// Indexed by target: 0 = a, 1 = b, 2 = c.
    pub vals: [Cell; 3],
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

/// A cell's shown value: `None` = not run, `Some(Err)` = failed.
type Shown = Option<Result<f64, String>>;

fn cell(v: &Shown) -> String {
    match v {
        None => "—".into(),
        Some(Ok(x)) => fmt_num(*x),
        Some(Err(_)) => "ERR".into(),
    }
}

fn ok(v: &Shown) -> Option<f64> {
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
    let rows: Vec<(&Row, [Shown; 3])> =
        rows.iter().map(|r| (r, [r.vals[0].value(), r.vals[1].value(), r.vals[2].value()])).collect();
    out.push_str("| Figure | (a) direct | (b) HAProxy TLS | (c) moat TLS | moat / HAProxy | moat − direct (µs) | HAProxy − direct (µs) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (r, vals) in &rows {
        let (a, b, c) = (ok(&vals[0]), ok(&vals[1]), ok(&vals[2]));
        let ratio = match (b, c) {
            (Some(b), Some(c)) if b != 0.0 => format!("{:.2}×", c / b),
            _ => "—".into(),
        };
        let (dc, db) =
            if r.kind == Kind::Latency { (delta(a, c), delta(a, b)) } else { ("".into(), "".into()) };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            cell(&vals[0]),
            cell(&vals[1]),
            cell(&vals[2]),
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
        let spread: Vec<String> = self
            .headline
            .iter()
            .filter(|r| r.vals.iter().any(|c| c.spread_pct().is_some()))
            .map(|r| {
                let c = |i: usize| {
                    self::Cell::spread_pct(&r.vals[i]).map_or("—".to_string(), |p| format!("{p:.0}%"))
                };
                format!("| {} | {} | {} | {} |\n", r.name, c(0), c(1), c(2))
            })
            .collect();
        if !spread.is_empty() {
            out.push_str("\n### Spread across rounds ((max − min) / median; the tables show medians)\n\n");
            out.push_str("| Figure | (a) | (b) | (c) |\n|---|---:|---:|---:|\n");
            for l in spread {
                out.push_str(&l);
            }
        }
        let errs: Vec<String> = self
            .headline
            .iter()
            .chain(self.detail.iter())
            .flat_map(|r| {
                r.vals.iter().enumerate().filter_map(move |(i, v)| {
                    v.error.as_ref().map(|e| {
                        let rounds = if v.samples.is_empty() { "every round" } else { "some rounds" };
                        format!("- {} / ({}), {rounds}: {}", r.name, ["a", "b", "c"][i], e)
                    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_the_median_or_the_error() {
        let mut c = Cell::default();
        assert!(c.value().is_none());
        c.error = Some("boom".into());
        assert_eq!(c.value(), Some(Err("boom".into())));
        for v in [3.0, f64::NAN, 1.0, 2.0] {
            c.push(Some(v));
        }
        c.push(None);
        assert_eq!(c.value(), Some(Ok(2.0)));
        c.push(Some(10.0));
        assert_eq!(c.value(), Some(Ok(2.5)));
        assert_eq!(c.spread_pct(), Some(360.0));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(-1500.0), "-1,500");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
    }
}
