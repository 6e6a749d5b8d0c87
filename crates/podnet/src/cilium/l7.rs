//! L7 HTTP rules as the proxy applies them: a request head parsed into method, path and
//! headers, matched against `rules.http` entries (method and path are regular expressions that
//! must match the whole value, as Envoy's `safe_regex` matchers do; headers by name, and value
//! when given). A request no rule allows is answered by the proxy with `403 Forbidden` and the
//! body `Access denied` (Cilium's Envoy filter).
//!
//! The regular expressions are matched by a small backtracking matcher over the syntax HTTP
//! rules use: literals, `.`, classes `[a-z0-9_-]` and `[^/]`, escapes (`\d \w \s \.`),
//! groups with alternation `(a|b)`, `*`, `+`, `?`, `{m,n}`, and `^`/`$`. (The `regex-automata`
//! crate builds without `std`, but would bring its parser and Unicode tables into the
//! WebAssembly module for a handful of patterns.)

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::rules::HttpRule;

/// The body of the proxy's denial.
pub const ACCESS_DENIED: &[u8] = b"Access denied\r\n";

/// The response the proxy sends for a denied request.
pub fn forbidden_response() -> Vec<u8> {
    let mut r = alloc::format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nserver: envoy\r\n\r\n",
        ACCESS_DENIED.len()
    )
    .into_bytes();
    r.extend_from_slice(ACCESS_DENIED);
    r
}

/// A parsed HTTP/1.x request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method.
    pub method: String,
    /// Path (request target).
    pub path: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Parses a head (up to and including the empty line); `None` if it is not HTTP.
    pub fn parse(head: &[u8]) -> Option<RequestHead> {
        let text = core::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next().filter(|m| !m.is_empty())?.into();
        let path = first.next().filter(|p| !p.is_empty())?.into();
        first.next().filter(|v| v.starts_with("HTTP/"))?;
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().into(), v.trim().into()))
            .collect();
        Some(RequestHead {
            method,
            path,
            headers,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `rule` allows `req`.
pub fn rule_matches(rule: &HttpRule, req: &RequestHead) -> bool {
    rule.method
        .as_deref()
        .is_none_or(|m| full_match(m, &req.method))
        && rule
            .path
            .as_deref()
            .is_none_or(|p| full_match(p, &req.path))
        && rule.headers.iter().all(|h| match h.split_once(':') {
            Some((k, v)) => req.header(k.trim()) == Some(v.trim()),
            None => req.header(h.trim()).is_some(),
        })
}

/// A rule in words: `GET /public`, `method GET path /api/.* header X-Token`.
pub fn describe(rule: &HttpRule) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &rule.method {
        parts.push(alloc::format!("method {m}"));
    }
    if let Some(p) = &rule.path {
        parts.push(alloc::format!("path {p}"));
    }
    for h in &rule.headers {
        parts.push(alloc::format!("header {h:?}"));
    }
    if parts.is_empty() {
        parts.push("any request".into());
    }
    alloc::format!("{} ({})", parts.join(" "), rule.source)
}

#[derive(Clone, Debug)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, u32, Option<u32>),
    Start,
    End,
}

impl Node {
    fn one(&self, c: char) -> bool {
        match self {
            Node::Char(x) => *x == c,
            Node::Any => true,
            Node::Class(ranges, neg) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *neg,
            _ => false,
        }
    }
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

fn escape_class(c: char) -> Option<Node> {
    let r = match c {
        'd' => Vec::from([('0', '9')]),
        'w' => Vec::from([('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
        's' => Vec::from([(' ', ' '), ('\t', '\t'), ('\r', '\r'), ('\n', '\n')]),
        _ => return None,
    };
    Some(Node::Class(r, false))
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = Vec::from([self.sequence()?]);
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.i += 1;
            let atom = match c {
                '.' => Node::Any,
                '^' => Node::Start,
                '$' => Node::End,
                '(' => {
                    if self.s.get(self.i..self.i + 2) == Some(&['?', ':']) {
                        self.i += 2;
                    }
                    let alts = self.alternatives()?;
                    if self.peek() != Some(')') {
                        return Err("missing )".into());
                    }
                    self.i += 1;
                    Node::Group(alts)
                }
                '[' => self.class()?,
                '\\' => {
                    let e = self.peek().ok_or("trailing \\")?;
                    self.i += 1;
                    escape_class(e).unwrap_or(Node::Char(e))
                }
                '*' | '+' | '?' | '{' => {
                    return Err(alloc::format!("nothing to repeat before {c}"))
                }
                c => Node::Char(c),
            };
            seq.push(self.quantified(atom)?);
        }
        Ok(seq)
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let end = self.s[self.i..]
                    .iter()
                    .position(|c| *c == '}')
                    .ok_or("missing }")?;
                let body: String = self.s[self.i + 1..self.i + end].iter().collect();
                self.i += end;
                let num = |t: &str| t.trim().parse::<u32>().map_err(|_| "bad {m,n}");
                match body.split_once(',') {
                    None => (num(&body)?, Some(num(&body)?)),
                    Some((a, "")) => (num(a)?, None),
                    Some((a, b)) => (num(a)?, Some(num(b)?)),
                }
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn class(&mut self) -> Result<Node, String> {
        let neg = self.peek() == Some('^');
        if neg {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or("missing ]")?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let c = if c == '\\' {
                let e = self.peek().ok_or("missing ]")?;
                self.i += 1;
                if let Some(Node::Class(r, _)) = escape_class(e) {
                    ranges.extend(r);
                    continue;
                }
                e
            } else {
                c
            };
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|n| *n != ']') {
                let hi = self.s[self.i + 1];
                self.i += 2;
                ranges.push((c, hi));
            } else {
                ranges.push((c, c));
            }
        }
        Ok(Node::Class(ranges, neg))
    }
}

/// Checks a pattern's syntax (for the loader's errors).
pub fn check(pattern: &str) -> Result<(), String> {
    compile(pattern).map(|_| ())
}

fn compile(pattern: &str) -> Result<Vec<Vec<Node>>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.len() > 256 {
        return Err("longer than 256 characters".into());
    }
    let mut p = Parser { s: &chars, i: 0 };
    let alts = p.alternatives()?;
    if p.i != chars.len() {
        return Err("unbalanced )".into());
    }
    Ok(alts)
}

/// Matching steps allowed per match: a pattern that backtracks more (`(a*)*b`) fails to
/// match rather than hold the simulation.
const STEP_BUDGET: u32 = 200_000;
/// The longest value matched (longer ones match no pattern).
pub const MAX_MATCH_LEN: usize = 2048;

struct Text<'a> {
    s: &'a [char],
    steps: core::cell::Cell<u32>,
}

fn seq(nodes: &[Node], t: &Text<'_>, pos: usize, k: &dyn Fn(usize) -> bool) -> bool {
    let Some((first, rest)) = nodes.split_first() else {
        return k(pos);
    };
    if t.steps.get() >= STEP_BUDGET {
        return false;
    }
    t.steps.set(t.steps.get() + 1);
    let s = t.s;
    let next = |p: usize| seq(rest, t, p, k);
    match first {
        Node::Start => pos == 0 && next(pos),
        Node::End => pos == s.len() && next(pos),
        Node::Group(alts) => alts.iter().any(|a| seq(a, t, pos, &next)),
        Node::Repeat(n, min, max) => repeat(n, *min, *max, 0, t, pos, &next),
        n => s.get(pos).is_some_and(|c| n.one(*c)) && next(pos + 1),
    }
}

fn repeat(
    n: &Node,
    min: u32,
    max: Option<u32>,
    count: u32,
    t: &Text<'_>,
    pos: usize,
    k: &dyn Fn(usize) -> bool,
) -> bool {
    // Greedy: one more (if it consumes something), else stop here.
    if max.is_none_or(|m| count < m) {
        let more = |p: usize| p > pos && repeat(n, min, max, count + 1, t, p, k);
        if seq(core::slice::from_ref(n), t, pos, &more) {
            return true;
        }
    }
    count >= min && k(pos)
}

/// Whether `pattern` matches all of `text` (an invalid pattern matches nothing, nor does a
/// text over [`MAX_MATCH_LEN`] characters or a match needing more than a fixed number of
/// backtracking steps).
pub fn full_match(pattern: &str, text: &str) -> bool {
    let Ok(alts) = compile(pattern) else {
        return false;
    };
    let s: Vec<char> = text.chars().collect();
    if s.len() > MAX_MATCH_LEN {
        return false;
    }
    let t = Text {
        s: &s,
        steps: core::cell::Cell::new(0),
    };
    alts.iter().any(|a| seq(a, &t, 0, &|p| p == s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_full_match() {
        for (p, t, want) in [
            ("/public", "/public", true),
            ("/public", "/public/x", false),
            ("/public.*", "/public/x", true),
            ("/api/v[0-9]+/items", "/api/v12/items", true),
            ("/api/v[0-9]+/items", "/api/v/items", false),
            ("GET|HEAD", "HEAD", true),
            ("GET|HEAD", "POST", false),
            ("/(a|b)c?", "/bc", true),
            ("/[^/]+", "/x/y", false),
            ("^/x$", "/x", true),
            ("\\d{2,3}", "123", true),
            ("\\d{2,3}", "1234", false),
            ("/a.b", "/a.b", true),
            ("/a\\.b", "/axb", false),
        ] {
            assert_eq!(full_match(p, t), want, "{p} ~ {t}");
        }
        assert!(check("(a").is_err());
        assert!(check("*a").is_err());
        assert!(check(&"(".repeat(300)).is_err());
        // Catastrophic backtracking ends (no match) instead of holding the simulation.
        let long = "a".repeat(40);
        assert!(!full_match("(a*)*b", &long));
        assert!(full_match("(a*)*", &long));
        assert!(!full_match(
            "/.*",
            &alloc::format!("/{}", "x".repeat(MAX_MATCH_LEN))
        ));
    }

    #[test]
    fn rules_on_a_request() {
        let req =
            RequestHead::parse(b"GET /admin HTTP/1.1\r\nHost: web\r\nX-Token: 1\r\n\r\n").unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/admin"));
        let rule = |m: Option<&str>, p: Option<&str>, h: &[&str]| HttpRule {
            method: m.map(String::from),
            path: p.map(String::from),
            headers: h.iter().map(|s| String::from(*s)).collect(),
            source: String::new(),
        };
        assert!(!rule_matches(
            &rule(Some("GET"), Some("/public"), &[]),
            &req
        ));
        assert!(rule_matches(&rule(Some("GET"), Some("/ad.*"), &[]), &req));
        assert!(rule_matches(&rule(None, None, &["x-token"]), &req));
        assert!(rule_matches(&rule(None, None, &["X-Token: 1"]), &req));
        assert!(!rule_matches(&rule(None, None, &["X-Token: 2"]), &req));
        assert!(!rule_matches(&rule(Some("POST"), None, &[]), &req));
        let r = forbidden_response();
        assert!(r.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
        assert!(r.ends_with(b"\r\n\r\nAccess denied\r\n"));
    }
}
