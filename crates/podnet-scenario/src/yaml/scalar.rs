//! Scalars: plain (typed by the core schema), quoted, and block (`|`, `>`).

use super::{is_flow_indicator, Parser, Res};
use crate::node::{Node, Pos, Val};

impl<'a> Parser<'a> {
    /// A plain scalar; continuation lines must be indented more than `parent` (any in flow
    /// context). Stops before `: `, ` #`, a line end it does not continue past, and (in flow
    /// context) flow indicators.
    pub(super) fn plain(&mut self, parent: i32, flow: bool) -> Res<String> {
        let mut out = String::new();
        let mut continued = false;
        loop {
            let a = self.i;
            let mut end = a;
            loop {
                match self.peek() {
                    0 | b'\n' | b'\r' => break,
                    b':' if self.blank_at(1) || (flow && is_flow_indicator(self.at(1))) => {
                        if continued && !flow {
                            return Err(self.err("mapping values are not allowed in this context"));
                        }
                        break;
                    }
                    b'#' if self.i > a && matches!(self.b[self.i - 1], b' ' | b'\t') => break,
                    c if flow && is_flow_indicator(c) => break,
                    b' ' | b'\t' => self.bump(),
                    _ => {
                        self.bump();
                        end = self.i;
                    }
                }
            }
            out.push_str(self.text(a, end));
            if !matches!(self.peek(), b'\n' | b'\r') || self.eof() {
                return Ok(out);
            }
            // Does the scalar go on on a following line?
            let save = (self.i, self.line, self.line_start);
            let mut empties = 0;
            let goes_on = loop {
                if self.peek() == b'\r' {
                    self.bump();
                }
                if self.peek() != b'\n' {
                    break false;
                }
                self.bump();
                if self.at_marker() {
                    break false;
                }
                let mut n = 0;
                while self.peek() == b' ' {
                    self.bump();
                    n += 1;
                }
                let tab = self.peek() == b'\t';
                while matches!(self.peek(), b' ' | b'\t') {
                    self.bump();
                }
                if matches!(self.peek(), b'\n' | b'\r') {
                    empties += 1;
                    continue;
                }
                let stop = self.eof()
                    || self.peek() == b'#'
                    || (!flow && (n <= parent || tab))
                    || (flow
                        && (is_flow_indicator(self.peek())
                            || (self.peek() == b':' && self.blank_at(1))));
                break !stop;
            };
            if !goes_on {
                (self.i, self.line, self.line_start) = save;
                return Ok(out);
            }
            if empties == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', empties));
            }
            continued = true;
        }
    }

    /// A single- or double-quoted scalar.
    pub(super) fn quoted(&mut self) -> Res<String> {
        let start = self.pos();
        let double = self.peek() == b'"';
        self.bump();
        let mut out = String::new();
        loop {
            if self.eof() {
                return Err(self.err_at(start, "unclosed quote"));
            }
            match self.peek() {
                b'\'' if !double => {
                    if self.at(1) == b'\'' {
                        out.push('\'');
                        self.bump();
                        self.bump();
                        continue;
                    }
                    self.bump();
                    return Ok(out);
                }
                b'"' if double => {
                    self.bump();
                    return Ok(out);
                }
                b'\\' if double => {
                    if matches!(self.at(1), b'\n' | b'\r') {
                        self.bump();
                        self.line_break_in_quotes(&mut out, true)?;
                    } else {
                        self.escape(&mut out)?;
                    }
                }
                b'\n' | b'\r' => self.line_break_in_quotes(&mut out, false)?,
                _ => {
                    let a = self.i;
                    self.bump();
                    while !self.eof() && self.peek() & 0xC0 == 0x80 {
                        self.bump();
                    }
                    out.push_str(self.text(a, self.i));
                }
            }
        }
    }

    /// Folds a line break inside quotes: trailing and leading blanks go, one break becomes a
    /// space, further (empty) lines become newlines; an escaped break joins the lines.
    fn line_break_in_quotes(&mut self, out: &mut String, escaped: bool) -> Res<()> {
        if !escaped {
            let kept = out.trim_end_matches([' ', '\t']).len();
            out.truncate(kept);
        }
        let mut breaks: usize = 0;
        while matches!(self.peek(), b'\n' | b'\r' | b' ' | b'\t') && !self.eof() {
            if self.peek() == b'\n' {
                breaks += 1;
                self.bump();
                if self.at_marker() {
                    return Err(self.err(
                        "found unexpected document indicator while scanning a quoted scalar",
                    ));
                }
            } else {
                self.bump();
            }
        }
        if escaped {
            breaks = breaks.saturating_sub(1);
            out.extend(std::iter::repeat_n('\n', breaks));
        } else if breaks <= 1 {
            out.push(' ');
        } else {
            out.extend(std::iter::repeat_n('\n', breaks - 1));
        }
        Ok(())
    }

    fn escape(&mut self, out: &mut String) -> Res<()> {
        let pos = self.pos();
        self.bump();
        let c = self.peek();
        self.bump();
        let ch = match c {
            b'0' => '\0',
            b'a' => '\x07',
            b'b' => '\x08',
            b't' | b'\t' => '\t',
            b'n' => '\n',
            b'v' => '\x0b',
            b'f' => '\x0c',
            b'r' => '\r',
            b'e' => '\x1b',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' | b'u' | b'U' => {
                let len = match c {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = self.text(self.i, (self.i + len).min(self.b.len()));
                let ch = (hex.len() == len)
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32);
                let Some(ch) = ch else {
                    return Err(self.err_at(
                        pos,
                        "found an invalid escape sequence in a double-quoted scalar",
                    ));
                };
                self.goto(self.i + len);
                ch
            }
            _ => {
                return Err(self.err_at(
                    pos,
                    "found unknown escape character while parsing a quoted scalar",
                ))
            }
        };
        out.push(ch);
        Ok(())
    }

    /// A literal (`|`) or folded (`>`) block scalar.
    pub(super) fn block_scalar(&mut self, parent: i32) -> Res<Node> {
        let mut pos = self.pos();
        let literal = self.peek() == b'|';
        self.bump();
        let (mut keep, mut strip, mut explicit) = (false, false, None);
        loop {
            match self.peek() {
                b'+' => keep = true,
                b'-' => strip = true,
                c @ b'1'..=b'9' => explicit = Some(i32::from(c - b'0')),
                _ => break,
            }
            self.bump();
        }
        self.skip_inline();
        if !self.at_break() {
            return Err(self.err("did not find expected comment or line break"));
        }
        if self.peek() == b'\r' {
            self.bump();
        }
        self.bump();
        let mut indent = explicit.map(|m| parent.max(-1) + m);
        let mut lines: Vec<&'a str> = Vec::new();
        while !self.eof() {
            let ls = self.i;
            let mut k = ls;
            while self.b.get(k) == Some(&b' ') {
                k += 1;
            }
            let n = i32::try_from(k - ls).unwrap_or(i32::MAX);
            let mut e = k;
            while !matches!(self.b.get(e), None | Some(b'\n')) {
                e += 1;
            }
            let line_end = if e > ls && self.b[e - 1] == b'\r' {
                e - 1
            } else {
                e
            };
            let empty = self.b[k..line_end].iter().all(|&c| c == b' ' || c == b'\t')
                && self.b.get(k) != Some(&b'\t');
            let ind = match indent {
                Some(ind) => ind,
                None if empty => {
                    lines.push("");
                    self.goto(e + 1);
                    continue;
                }
                None if n <= parent => break,
                None => {
                    indent = Some(n);
                    n
                }
            };
            if lines.iter().all(|l| l.is_empty()) && !empty {
                pos = Pos {
                    line: self.line,
                    col: u32::try_from(ind).unwrap_or(0).saturating_add(1),
                };
            }
            if self.b[ls..].starts_with(b"---") || self.b[ls..].starts_with(b"...") {
                let after = self.b.get(ls + 3).copied().unwrap_or(b' ');
                if matches!(after, b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
            }
            if empty && n <= ind {
                lines.push("");
            } else if n < ind {
                break;
            } else {
                let from = ls + usize::try_from(ind).unwrap_or(0);
                lines.push(self.text(from.min(line_end), line_end));
            }
            self.goto(e + 1);
        }
        let body_len = lines
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(0, |p| p + 1);
        let (body, trailing) = lines.split_at(body_len);
        let mut out = if literal {
            body.join("\n")
        } else {
            fold_lines(body)
        };
        if !body.is_empty() && !strip {
            out.push('\n');
        }
        if keep {
            for _ in 0..trailing.len() {
                out.push('\n');
            }
        }
        Ok(Node {
            val: Val::Str(out),
            pos,
            raw: None,
        })
    }
}

/// Folds the lines of a `>` block scalar: a break between two lines of text becomes a space,
/// empty lines become newlines, and more-indented lines keep their breaks.
fn fold_lines(body: &[&str]) -> String {
    let mut out = String::new();
    let mut breaks = 0;
    let mut first = true;
    let mut prev_more = false;
    for l in body {
        if l.is_empty() {
            breaks += 1;
            continue;
        }
        let more = l.starts_with([' ', '\t']);
        if !first {
            if breaks == 0 && !more && !prev_more {
                out.push(' ');
            } else if more || prev_more || breaks == 0 {
                out.push('\n');
            }
        }
        out.extend(std::iter::repeat_n('\n', breaks));
        out.push_str(l);
        first = false;
        breaks = 0;
        prev_more = more;
    }
    out
}

/// Types a plain scalar by the YAML 1.2 core schema.
pub(super) fn resolve(t: &str) -> Val {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Val::Null,
        "true" | "True" | "TRUE" => return Val::Bool(true),
        "false" | "False" | "FALSE" => return Val::Bool(false),
        _ => {}
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let b = unsigned.as_bytes();
    let leading_zero = b.len() > 1 && b[0] == b'0' && b.iter().all(u8::is_ascii_digit);
    if matches!(b, [b'0', b'X' | b'O' | b'B', ..])
        || (t.len() > unsigned.len() && unsigned.eq_ignore_ascii_case(".nan"))
        || leading_zero
    {
        return Val::Str(t.to_string());
    }
    let radix = match b {
        [b'0', b'x', ..] => Some(16),
        [b'0', b'o', ..] => Some(8),
        [b'0', b'b', ..] => Some(2),
        _ => None,
    };
    // Underscores between digits are allowed (`1_000`).
    let digits: String = unsigned.chars().filter(|&c| c != '_').collect();
    let int = match radix {
        Some(r) if digits.len() > 2 => u128::from_str_radix(&digits[2..], r).ok(),
        Some(_) => None,
        None if b.first().is_some_and(u8::is_ascii_digit)
            && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            digits.parse().ok()
        }
        None => None,
    };
    if let Some(m) = int {
        if t.starts_with('-') {
            if let Some(v) = i128::try_from(m).ok().and_then(|m| i64::try_from(-m).ok()) {
                return Val::Int(v);
            }
        } else if let Ok(v) = u64::try_from(m) {
            return Val::UInt(v);
        }
    }
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            let s = if t.starts_with('-') { "-.inf" } else { ".inf" };
            return Val::Str(s.to_string());
        }
        ".nan" | ".NaN" | ".NAN" => return Val::Str(".nan".to_string()),
        _ => {}
    }
    if is_float(unsigned) {
        if let Ok(f) = t.parse::<f64>() {
            if f.is_finite() {
                return Val::Float(f);
            }
            let s = if f.is_sign_negative() {
                "-.inf"
            } else {
                ".inf"
            };
            return Val::Str(s.to_string());
        }
    }
    Val::Str(t.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |k: &mut usize| {
        let from = *k;
        while b.get(*k).is_some_and(u8::is_ascii_digit) {
            *k += 1;
        }
        *k - from
    };
    let mut k = 0;
    let int = digits(&mut k);
    let mut frac = 0;
    if b.get(k) == Some(&b'.') {
        k += 1;
        frac = digits(&mut k);
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if matches!(b.get(k), Some(b'e' | b'E')) {
        k += 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if digits(&mut k) == 0 {
            return false;
        }
    }
    k == b.len()
}
