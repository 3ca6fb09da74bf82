//! Importers: convert EMQX `acl.conf` and mosquitto `acl_file` into moat rule YAML.
//!
//! Users migrate from these brokers; hand-translating hundreds of lines is where mistakes
//! (and holes) creep in. The output is plain moat YAML that is parsed back before it is
//! returned, so an import either yields a file moat accepts or an error naming the source
//! line. Where the source semantics cannot be expressed exactly, the importer chooses the
//! stricter reading and says so in a comment in the output.

use std::fmt::Write as _;

use super::file::parse_rule_file;

/// YAML double-quoted scalar: JSON string syntax is valid YAML and escapes everything needed.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Parses the produced YAML back so an import never hands out a file moat would reject.
fn checked(yaml: String) -> Result<String, String> {
    match parse_rule_file(&yaml, "import") {
        Ok(_) => Ok(yaml),
        Err(issues) => Err(issues
            .iter()
            .map(|i| format!("generated line {}: {}: {}", i.line, i.key, i.message))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

// ---------------------------------------------------------------- EMQX (Erlang terms)

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Atom(String),
    Str(String),
    Int(i64),
    Tuple(Vec<Term>),
    List(Vec<Term>),
}

const MAX_TERM_DEPTH: usize = 32;

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Open(char),
    Close(char),
    Comma,
    Dot,
    Atom(String),
    Str(String),
    Int(i64),
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while let Some(&(_, c)) = self.chars.peek() {
            if c == '\n' {
                self.line = self.line.saturating_add(1);
                self.chars.next();
            } else if c.is_whitespace() {
                self.chars.next();
            } else if c == '%' {
                while let Some(&(_, c)) = self.chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.chars.next();
                }
            } else {
                break;
            }
        }
    }

    fn quoted(&mut self, end: char) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.chars.next() {
                None => return Err(format!("line {}: unterminated string", self.line)),
                Some((_, c)) if c == end => return Ok(s),
                Some((_, '\\')) => match self.chars.next() {
                    Some((_, 'n')) => s.push('\n'),
                    Some((_, 't')) => s.push('\t'),
                    Some((_, c)) => s.push(c),
                    None => return Err(format!("line {}: unterminated string", self.line)),
                },
                Some((_, c)) => {
                    if c == '\n' {
                        self.line = self.line.saturating_add(1);
                    }
                    s.push(c);
                }
            }
        }
    }

    fn next_tok(&mut self) -> Result<Option<Tok>, String> {
        self.skip_ws();
        let Some((_, c)) = self.chars.next() else {
            return Ok(None);
        };
        Ok(Some(match c {
            '{' | '[' => Tok::Open(c),
            '}' | ']' => Tok::Close(c),
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '"' => Tok::Str(self.quoted('"')?),
            '\'' => Tok::Atom(self.quoted('\'')?),
            '<' => {
                // Binary string <<"...">>.
                if self.chars.next().map(|x| x.1) != Some('<') || self.chars.next().map(|x| x.1) != Some('"')
                {
                    return Err(format!("line {}: expected <<\"...\">>", self.line));
                }
                let s = self.quoted('"')?;
                if self.chars.next().map(|x| x.1) != Some('>') || self.chars.next().map(|x| x.1) != Some('>')
                {
                    return Err(format!("line {}: expected >> after binary string", self.line));
                }
                Tok::Str(s)
            }
            c if c.is_ascii_digit() => {
                let mut n = i64::from(c.to_digit(10).unwrap_or(0));
                while let Some(&(_, d)) = self.chars.peek() {
                    let Some(v) = d.to_digit(10) else { break };
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(i64::from(v)))
                        .ok_or("integer too large")?;
                    self.chars.next();
                }
                Tok::Int(n)
            }
            c if c.is_ascii_lowercase() => {
                let mut s = String::from(c);
                while let Some(&(_, d)) = self.chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '_' || d == '@') {
                        break;
                    }
                    s.push(d);
                    self.chars.next();
                }
                Tok::Atom(s)
            }
            other => return Err(format!("line {}: unexpected character {other:?}", self.line)),
        }))
    }
}

struct TermParser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Tok>,
}

impl TermParser<'_> {
    fn next(&mut self) -> Result<Option<Tok>, String> {
        match self.peeked.take() {
            Some(t) => Ok(Some(t)),
            None => self.lex.next_tok(),
        }
    }

    fn term(&mut self, depth: usize) -> Result<Term, String> {
        if depth > MAX_TERM_DEPTH {
            return Err(format!("line {}: terms nested too deeply", self.lex.line));
        }
        match self.next()? {
            Some(Tok::Atom(a)) => Ok(Term::Atom(a)),
            Some(Tok::Str(s)) => Ok(Term::Str(s)),
            Some(Tok::Int(i)) => Ok(Term::Int(i)),
            Some(Tok::Open(open)) => {
                let close = if open == '{' { '}' } else { ']' };
                let mut items = Vec::new();
                match self.next()? {
                    Some(Tok::Close(c)) if c == close => {}
                    other => {
                        self.peeked = other;
                        loop {
                            items.push(self.term(depth.saturating_add(1))?);
                            match self.next()? {
                                Some(Tok::Comma) => {}
                                Some(Tok::Close(c)) if c == close => break,
                                _ => {
                                    return Err(format!("line {}: expected ',' or '{close}'", self.lex.line))
                                }
                            }
                        }
                    }
                }
                Ok(if open == '{' { Term::Tuple(items) } else { Term::List(items) })
            }
            other => Err(format!("line {}: unexpected {other:?}", self.lex.line)),
        }
    }
}

fn emqx_str(t: &Term, what: &str) -> Result<String, String> {
    match t {
        Term::Str(s) => Ok(s.clone()),
        _ => Err(format!("{what}: expected a string")),
    }
}

/// EMQX regexes are searches (`re:run`); moat anchors regexes, so wrap to keep the meaning.
fn emqx_re(re: &str) -> String {
    format!("(?s:.*)(?:{re})(?s:.*)")
}

fn emqx_who(t: &Term, depth: usize) -> Result<String, String> {
    if depth > 8 {
        return Err("who nested too deeply".into());
    }
    match t {
        Term::Atom(a) if a == "all" => Ok("all".into()),
        Term::Tuple(items) => match items.as_slice() {
            [Term::Atom(k), Term::Tuple(re)]
                if matches!(k.as_str(), "username" | "user" | "clientid" | "client") =>
            {
                let [Term::Atom(r), pat] = re.as_slice() else {
                    return Err(format!("{k}: expected {{re, \"...\"}}"));
                };
                if r != "re" {
                    return Err(format!("{k}: expected {{re, \"...\"}}"));
                }
                let key = if k.starts_with("user") { "username_re" } else { "clientid_re" };
                Ok(format!("{{{key}: {}}}", q(&emqx_re(&emqx_str(pat, k)?))))
            }
            [Term::Atom(k), v] => {
                let s = |name: &str| -> Result<String, String> {
                    Ok(format!("{{{name}: {}}}", q(&emqx_str(v, k)?)))
                };
                match k.as_str() {
                    "username" | "user" => s("username"),
                    "clientid" | "client" => s("clientid"),
                    "ipaddr" => s("ipaddr"),
                    "ipaddrs" => {
                        let Term::List(l) = v else {
                            return Err("ipaddrs: expected a list".into());
                        };
                        let parts: Result<Vec<String>, String> = l
                            .iter()
                            .map(|x| Ok(format!("{{ipaddr: {}}}", q(&emqx_str(x, "ipaddrs")?))))
                            .collect();
                        Ok(format!("{{or: [{}]}}", parts?.join(", ")))
                    }
                    "and" | "or" => {
                        let Term::List(l) = v else {
                            return Err(format!("{k}: expected a list"));
                        };
                        if l.is_empty() {
                            return Err(format!("{k}: empty list"));
                        }
                        let parts: Result<Vec<String>, String> =
                            l.iter().map(|x| emqx_who(x, depth.saturating_add(1))).collect();
                        Ok(format!("{{{k}: [{}]}}", parts?.join(", ")))
                    }
                    other => Err(format!("unsupported who `{other}`")),
                }
            }
            _ => Err(format!("unsupported who {t:?}")),
        },
        _ => Err(format!("unsupported who {t:?}")),
    }
}

/// An EMQX action with its qualifiers: (action, qos list, retain).
type EmqxAction = (String, Option<Vec<i64>>, Option<bool>);

fn emqx_action(t: &Term) -> Result<EmqxAction, String> {
    let (name, opts) = match t {
        Term::Atom(a) => (a.as_str(), &[][..]),
        Term::Tuple(items) => match items.as_slice() {
            [Term::Atom(a), Term::List(opts)] => (a.as_str(), opts.as_slice()),
            _ => return Err(format!("unsupported action {t:?}")),
        },
        _ => return Err(format!("unsupported action {t:?}")),
    };
    let action = match name {
        "publish" => "publish",
        "subscribe" => "subscribe",
        "all" | "pubsub" => "all",
        other => return Err(format!("unsupported action `{other}`")),
    };
    let mut qos = None;
    let mut retain = None;
    for o in opts {
        match o {
            Term::Tuple(kv) => match kv.as_slice() {
                [Term::Atom(k), Term::Int(n)] if k == "qos" => qos = Some(vec![*n]),
                [Term::Atom(k), Term::List(l)] if k == "qos" => {
                    let v: Result<Vec<i64>, String> = l
                        .iter()
                        .map(|x| match x {
                            Term::Int(n) => Ok(*n),
                            _ => Err("qos: expected integers".to_string()),
                        })
                        .collect();
                    qos = Some(v?);
                }
                [Term::Atom(k), Term::Atom(b)] if k == "retain" && (b == "true" || b == "false") => {
                    retain = Some(b == "true");
                }
                [Term::Atom(k), Term::Atom(b)] if k == "retain" && b == "all" => {}
                _ => return Err(format!("unsupported action option {o:?}")),
            },
            _ => return Err(format!("unsupported action option {o:?}")),
        }
    }
    Ok((action.into(), qos, retain))
}

/// EMQX 4 `%u`/`%c` and EMQX 5 `${...}` placeholders to moat's.
fn emqx_topic_text(s: &str) -> String {
    s.replace("%u", "${username}").replace("%c", "${clientid}").replace("${cert_common_name}", "${cert_cn}")
}

fn emqx_topics(t: &Term) -> Result<Vec<String>, String> {
    let Term::List(items) = t else {
        return Err("topics: expected a list".into());
    };
    if items.is_empty() {
        return Err("topics: empty list".into());
    }
    items
        .iter()
        .map(|x| match x {
            Term::Str(s) => Ok(q(&emqx_topic_text(s))),
            Term::Tuple(kv) => match kv.as_slice() {
                [Term::Atom(k), Term::Str(s)] if k == "eq" => Ok(format!("{{eq: {}}}", q(s))),
                _ => Err(format!("unsupported topic {x:?}")),
            },
            _ => Err(format!("unsupported topic {x:?}")),
        })
        .collect()
}

/// Converts an EMQX `acl.conf` (Erlang terms, EMQX 4 or 5) to moat YAML.
///
/// `{allow, all}.` / `{deny, all}.` match everything in EMQX, so they end evaluation: they
/// become `no_match`, and any statement after them (unreachable in EMQX) is dropped.
pub fn import_emqx(text: &str) -> Result<String, String> {
    let mut p = TermParser { lex: Lexer { chars: text.char_indices().peekable(), line: 1 }, peeked: None };
    let mut rules = String::new();
    let mut no_match = "deny";
    let mut dropped = 0usize;
    let mut done = false;
    loop {
        p.lex.skip_ws();
        let line = p.lex.line;
        match p.next()? {
            None => break,
            Some(t) => p.peeked = Some(t),
        }
        let term = p.term(0)?;
        if p.next()? != Some(Tok::Dot) {
            return Err(format!("line {}: expected '.' after statement", p.lex.line));
        }
        if done {
            dropped = dropped.saturating_add(1);
            continue;
        }
        let ctx = |e: String| format!("line {line}: {e}");
        let Term::Tuple(items) = &term else {
            return Err(ctx("expected a tuple".into()));
        };
        let (perm, rest) = match items.split_first() {
            Some((Term::Atom(a), rest)) if a == "allow" || a == "deny" => (a.as_str(), rest),
            _ => return Err(ctx("expected {allow|deny, ...}".into())),
        };
        match rest {
            [Term::Atom(all)] if all == "all" => {
                no_match = if perm == "allow" { "allow" } else { "deny" };
                done = true;
            }
            [who, action, topics] => {
                let who = emqx_who(who, 0).map_err(ctx)?;
                let (action, qos, retain) = emqx_action(action).map_err(ctx)?;
                let topics = emqx_topics(topics).map_err(ctx)?;
                if retain.is_some() && action != "publish" {
                    return Err(ctx("retain applies to publish only".into()));
                }
                let _ =
                    write!(rules, "  - {{id: emqx-L{line}, permission: {perm}, who: {who}, action: {action}");
                if let Some(qos) = qos {
                    let list: Vec<String> = qos.iter().map(i64::to_string).collect();
                    let _ = write!(rules, ", qos: [{}]", list.join(", "));
                }
                if let Some(r) = retain {
                    let _ = write!(rules, ", retain: {r}");
                }
                let _ = writeln!(rules, ", topics: [{}]}}", topics.join(", "));
            }
            _ => return Err(ctx("expected {Permission, Who, Action, Topics} or {Permission, all}".into())),
        }
    }
    let mut out = String::from("# Imported from EMQX acl.conf by moat.\n");
    if dropped > 0 {
        let _ = writeln!(out, "# {dropped} statement(s) after the catch-all were unreachable and dropped.");
    }
    let _ = writeln!(out, "no_match: {no_match}");
    if rules.is_empty() {
        out.push_str("rules: []\n");
    } else {
        out.push_str("rules:\n");
        out.push_str(&rules);
    }
    checked(out)
}

// ---------------------------------------------------------------- mosquitto

#[derive(Default)]
struct MosqList {
    deny: Vec<(usize, String)>,
    /// (line, action, topic)
    grant: Vec<(usize, &'static str, String)>,
}

fn mosq_topic_line(rest: &str) -> Result<(Option<&'static str>, String), String> {
    let rest = rest.trim();
    let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let access = match word {
        "read" => Some(Some("subscribe")),
        "write" => Some(Some("publish")),
        "readwrite" => Some(Some("all")),
        "deny" => Some(None),
        _ => None,
    };
    match access {
        Some(a) if !tail.trim().is_empty() => Ok((a, tail.trim().to_string())),
        Some(_) => Err("missing topic".into()),
        None if rest.is_empty() => Err("missing topic".into()),
        None => Ok((Some("all"), rest.to_string())),
    }
}

fn mosq_pattern(s: &str) -> String {
    s.replace("%c", "${clientid}").replace("%u", "${username}")
}

/// Converts a mosquitto `acl_file` to moat YAML.
///
/// mosquitto checks a client's own `topic` lines (denials first, then grants), then the
/// `pattern` lines (denials first, then grants); the output keeps exactly that order.
/// `read` becomes subscribe (moat checks the subscription filter, which must lie inside the
/// granted topic — stricter than mosquitto's per-message check), `write` publish. `topic`
/// lines before any `user` line apply to anonymous clients in mosquitto; moat cannot select
/// "no username", so they are listed as comments and not imported (fail closed).
pub fn import_mosquitto(text: &str) -> Result<String, String> {
    let mut users: Vec<(String, MosqList)> = Vec::new();
    let mut patterns = MosqList::default();
    let mut anonymous: Vec<String> = Vec::new();
    let mut current: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i.saturating_add(1);
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (kw, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let ctx = |e: String| format!("line {line}: {e}");
        match kw {
            "user" => {
                let name = rest.trim();
                if name.is_empty() {
                    return Err(ctx("user without a name".into()));
                }
                current = Some(match users.iter().position(|(u, _)| u == name) {
                    Some(p) => p,
                    None => {
                        users.push((name.to_string(), MosqList::default()));
                        users.len().saturating_sub(1)
                    }
                });
            }
            "topic" => {
                let (access, topic) = mosq_topic_line(rest).map_err(ctx)?;
                let list = match current.and_then(|c| users.get_mut(c)) {
                    Some((_, list)) => list,
                    None => {
                        anonymous.push(l.to_string());
                        continue;
                    }
                };
                match access {
                    None => list.deny.push((line, topic)),
                    Some(a) => list.grant.push((line, a, topic)),
                }
            }
            "pattern" => {
                let (access, topic) = mosq_topic_line(rest).map_err(ctx)?;
                let topic = mosq_pattern(&topic);
                match access {
                    None => patterns.deny.push((line, topic)),
                    Some(a) => patterns.grant.push((line, a, topic)),
                }
            }
            other => return Err(ctx(format!("unknown keyword `{other}`"))),
        }
    }
    let mut rules = String::new();
    let mut emit = |who: &str, list: &MosqList| {
        for (line, topic) in &list.deny {
            let _ = writeln!(
                rules,
                "  - {{id: mosquitto-L{line}, permission: deny, who: {who}, action: all, topics: [{}]}}",
                q(topic)
            );
        }
        for (line, action, topic) in &list.grant {
            let _ = writeln!(
                rules,
                "  - {{id: mosquitto-L{line}, permission: allow, who: {who}, action: {action}, topics: [{}]}}",
                q(topic)
            );
        }
    };
    for (user, list) in &users {
        emit(&format!("{{username: {}}}", q(user)), list);
    }
    emit("all", &patterns);
    let mut out = String::from("# Imported from mosquitto acl_file by moat.\n");
    for a in &anonymous {
        let _ = writeln!(out, "# not imported (anonymous clients): {}", a.escape_debug());
    }
    out.push_str("no_match: deny\n");
    if rules.is_empty() {
        out.push_str("rules: []\n");
    } else {
        out.push_str("rules:\n");
        out.push_str(&rules);
    }
    checked(out)
}
