//! A small YAML parser that builds located [`Node`] trees directly.
//!
//! It reads what scenario files and `kubectl get -o yaml` dumps use: block mappings and
//! sequences, flow collections, plain, single- and double-quoted scalars (multi-line, folded),
//! literal and folded block scalars with chomping and indentation indicators, comments,
//! several documents (`---`, `...`, directives skipped), anchors and aliases, and tags
//! (`!!str` and `!` keep a scalar a string; other tags are ignored). Plain scalars are typed
//! by the YAML 1.2 core schema (`true`/`false` only, `0123` stays a string, `.inf` and `.nan`
//! read as strings). Complex keys (`? `) and merge keys are not supported.
//!
//! It exists instead of a serde-based YAML library to keep the WebAssembly module small; it
//! never panics (budgets bound nesting and alias expansion) and reports syntax errors with
//! their line and column.

use std::collections::HashMap;

use crate::node::{Node, Pos, SyntaxError, Val};

mod scalar;
#[cfg(test)]
mod tests;

use scalar::resolve;

/// How deep collections may nest.
const MAX_DEPTH: usize = 128;
/// How many nodes aliases may copy in all.
const MAX_ALIAS_NODES: usize = 250_000;

type Res<T> = Result<T, SyntaxError>;

/// Parses every document of a YAML stream (documents that are null are left out).
pub(crate) fn parse_stream(text: &str) -> Res<Vec<Node>> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        anchors: HashMap::new(),
        alias_nodes: 0,
        depth: 0,
        last: Pos::default(),
    };
    if let Some(nul) = text.find('\0') {
        p.goto(nul);
        return Err(p.err("found a NUL character, which YAML does not allow"));
    }
    if text.starts_with('\u{feff}') {
        p.i = 3;
        p.line_start = 3;
    }
    p.stream()
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    line: u32,
    line_start: usize,
    /// Anchored nodes and their node counts.
    anchors: HashMap<String, (Node, usize)>,
    alias_nodes: usize,
    depth: usize,
    /// Where the last scalar or collection on a line started (tab errors point there).
    last: Pos,
}

/// Anchor and tag written before a node.
#[derive(Default)]
struct Props {
    anchor: Option<String>,
    tag: Option<String>,
}

pub(super) fn is_flow_indicator(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

fn count_nodes(n: &Node) -> usize {
    1 + match &n.val {
        Val::Seq(items) => items.iter().map(count_nodes).sum(),
        Val::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_nodes(k) + count_nodes(v))
            .sum(),
        _ => 0,
    }
}

fn null_at(pos: Pos) -> Node {
    Node {
        val: Val::Null,
        pos,
        raw: Some(String::new()),
    }
}

impl<'a> Parser<'a> {
    // ---- cursor ----

    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }
    fn peek(&self) -> u8 {
        self.at(0)
    }
    /// Whether the byte `k` ahead is a space, a tab, a line break or the end.
    fn blank_at(&self, k: usize) -> bool {
        matches!(self.at(k), 0 | b' ' | b'\t' | b'\n' | b'\r')
    }
    /// The end of an anchor, alias or tag name.
    fn at_name_end(&self, flow: bool) -> bool {
        self.blank_at(0) || (flow && is_flow_indicator(self.peek()))
    }
    fn at_break(&self) -> bool {
        matches!(self.peek(), 0 | b'\n' | b'\r')
    }
    /// Moves one byte on (never past the end).
    fn bump(&mut self) {
        if self.eof() {
            return;
        }
        if self.peek() == b'\n' {
            self.line += 1;
            self.line_start = self.i + 1;
        }
        self.i += 1;
    }
    fn goto(&mut self, to: usize) {
        while self.i < to && !self.eof() {
            self.bump();
        }
    }
    /// The 0-based column (in characters).
    fn col(&self) -> i32 {
        let n = self.b[self.line_start..self.i.min(self.b.len())]
            .iter()
            .filter(|&&c| c & 0xC0 != 0x80)
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: u32::try_from(self.col())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        }
    }
    fn err(&self, message: impl Into<String>) -> SyntaxError {
        self.err_at(self.pos(), message)
    }
    fn err_at(&self, pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.into(),
        }
    }
    fn text(&self, a: usize, b: usize) -> &'a str {
        self.s.get(a..b).unwrap_or("")
    }
    /// `---` or `...` at the start of a line.
    fn at_marker(&self) -> bool {
        self.i == self.line_start
            && self
                .b
                .get(self.i..)
                .is_some_and(|r| r.starts_with(b"---") || r.starts_with(b"..."))
            && self.blank_at(3)
    }
    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// Skips spaces, tabs and a comment on the current line.
    fn skip_inline(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\r') && !self.eof() {
            self.bump();
        }
        if self.peek() == b'#' {
            while !matches!(self.peek(), 0 | b'\n') {
                self.bump();
            }
        }
    }

    /// Skips blanks, comments and line breaks up to the next content, and returns its
    /// column. In block context a tab in a line's indentation is an error.
    fn skip_space(&mut self, block: bool) -> Res<i32> {
        loop {
            self.skip_inline();
            if self.eof() || self.peek() != b'\n' {
                return Ok(self.col());
            }
            self.bump();
            while self.peek() == b' ' {
                self.bump();
            }
            if block && self.peek() == b'\t' {
                let mut k = self.i;
                while matches!(self.b.get(k), Some(b' ' | b'\t')) {
                    k += 1;
                }
                if !matches!(self.b.get(k), None | Some(b'\n' | b'\r' | b'#')) {
                    return Err(
                        self.err_at(self.last, "found a tab character that violates indentation")
                    );
                }
            }
        }
    }

    // ---- documents ----

    fn stream(&mut self) -> Res<Vec<Node>> {
        let mut docs = Vec::new();
        loop {
            self.skip_space(true)?;
            if self.eof() {
                return Ok(docs);
            }
            if self.i == self.line_start && self.peek() == b'%' {
                while !matches!(self.peek(), 0 | b'\n') {
                    self.bump();
                }
                continue;
            }
            if self.at_marker() {
                let start = self.peek();
                self.goto(self.i + 3);
                if start == b'.' {
                    continue;
                }
            }
            let at = self.pos();
            let node = self.block_node(-1, false, true, at)?;
            self.skip_space(true)?;
            if !self.eof() && !self.at_marker() {
                return Err(self.err("did not find expected <document start>"));
            }
            if !matches!(node.val, Val::Null) {
                docs.push(node);
            }
        }
    }

    // ---- block context ----

    /// A node in block context, indented more than `parent` (a mapping value's block sequence
    /// may sit at the mapping's column). `inline_ok`: a mapping may start on this line.
    fn block_node(
        &mut self,
        parent: i32,
        map_value: bool,
        inline_ok: bool,
        null_pos: Pos,
    ) -> Res<Node> {
        let mut props = Props::default();
        // Properties on a line of their own belong to the collection below them.
        let mut props_before = false;
        self.skip_inline();
        let mut same_line = !self.at_break();
        loop {
            if !same_line {
                let ind = self.skip_space(true)?;
                let seq_here =
                    map_value && ind == parent && self.peek() == b'-' && self.blank_at(1);
                if self.eof() || self.at_marker() || (ind <= parent && !seq_here) {
                    return Ok(self.with_props(null_at(null_pos), props));
                }
            }
            if !self.read_props(&mut props, false)? {
                break;
            }
            self.skip_inline();
            same_line = !self.at_break();
            if same_line {
                break;
            }
            props_before = true;
        }
        let inline_ok = inline_ok || !same_line;
        let col = self.col();
        let c = self.peek();
        if c == b'-' && self.blank_at(1) {
            if !inline_ok {
                return Err(self.err("block sequence entries are not allowed in this context"));
            }
            // A mapping value's sequence is placed two columns right of its key (as
            // serde-saphyr did, so messages keep their columns).
            let pos = if map_value {
                Pos {
                    line: self.line,
                    col: u32::try_from(parent + 3).unwrap_or(1),
                }
            } else {
                self.pos()
            };
            let n = self.block_seq(col, pos)?;
            return Ok(self.with_props(n, props));
        }
        if (c == b'|' || c == b'>') && !self.eof() {
            let n = self.block_scalar(parent)?;
            return Ok(self.with_props(n, props));
        }
        if c == b'?' && self.blank_at(1) {
            return Err(self.err("complex mapping keys (`? `) are not supported"));
        }
        let first = self.inline_value(parent, false)?;
        if self.peek() == b':' && self.blank_at(1) {
            if !inline_ok {
                return Err(self.err("mapping values are not allowed in this context"));
            }
            if props_before {
                let map = self.block_map(col, first)?;
                return Ok(self.with_props(map, props));
            }
            let key = self.with_props(first, props);
            return self.block_map(col, key);
        }
        Ok(self.with_props(first, props))
    }

    /// Reads `&anchor` and `!tag` properties; false when there were none.
    fn read_props(&mut self, props: &mut Props, flow: bool) -> Res<bool> {
        let mut any = false;
        while matches!(self.peek(), b'&' | b'!') {
            let c = self.peek();
            self.bump();
            let a = self.i;
            while !self.at_name_end(flow) {
                self.bump();
            }
            let name = self.text(a, self.i).to_string();
            if c == b'&' {
                if name.is_empty() {
                    return Err(self.err("did not find expected anchor name"));
                }
                props.anchor = Some(name);
            } else {
                props.tag = Some(name);
            }
            any = true;
            if flow {
                self.skip_space(false)?;
            } else {
                while matches!(self.peek(), b' ' | b'\t') {
                    self.bump();
                }
            }
        }
        Ok(any)
    }

    /// Applies a tag (`!!str` and `!` make a scalar a string) and records an anchor.
    fn with_props(&mut self, mut n: Node, props: Props) -> Node {
        if let Some(tag) = props.tag {
            if matches!(tag.as_str(), "!str" | "" | "<tag:yaml.org,2002:str>") {
                if let Some(raw) = n.raw.take() {
                    n.val = Val::Str(raw);
                }
            }
        }
        if let Some(name) = props.anchor {
            let count = count_nodes(&n);
            self.anchors.insert(name, (n.clone(), count));
        }
        n
    }

    /// A scalar, flow collection or alias on the current line (a plain scalar may go on over
    /// lines indented more than `parent`); then skips spaces up to a `:` or the line's end.
    fn inline_value(&mut self, parent: i32, flow: bool) -> Res<Node> {
        self.last = self.pos();
        let n = match self.peek() {
            b'[' | b'{' => self.flow_collection()?,
            b'"' | b'\'' => {
                let pos = self.pos();
                let s = self.quoted()?;
                Node {
                    val: Val::Str(s),
                    pos,
                    raw: None,
                }
            }
            b'*' => self.alias(flow)?,
            b'@' | b'`' => return Err(self.err("found character that cannot start any token")),
            c if !flow && is_flow_indicator(c) => {
                return Err(self.err("did not find expected node content"))
            }
            _ => {
                let pos = self.pos();
                let text = self.plain(parent, flow)?;
                let val = resolve(&text);
                let raw = (!matches!(val, Val::Str(_))).then_some(text);
                Node { val, pos, raw }
            }
        };
        while matches!(self.peek(), b' ' | b'\t') {
            self.bump();
        }
        Ok(n)
    }

    fn alias(&mut self, flow: bool) -> Res<Node> {
        let pos = self.pos();
        self.bump();
        let a = self.i;
        while !self.at_name_end(flow) {
            self.bump();
        }
        let name = self.text(a, self.i);
        let Some((node, count)) = self.anchors.get(name) else {
            return Err(self.err_at(pos, format!("unknown anchor `{name}`")));
        };
        self.alias_nodes = self.alias_nodes.saturating_add(*count);
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(self.err_at(
                pos,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
            ));
        }
        let mut copy = node.clone();
        relocate(&mut copy, pos);
        Ok(copy)
    }

    fn block_map(&mut self, col: i32, first_key: Node) -> Res<Node> {
        self.enter()?;
        let pos = first_key.pos;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut key = first_key;
        loop {
            let colon = self.pos();
            self.bump();
            if entries.iter().any(|(k, _)| k.val == key.val) {
                return Err(self.err_at(key.pos, duplicate(&key)));
            }
            let value = self.block_node(col, true, false, colon)?;
            entries.push((key, value));
            let ind = self.skip_space(true)?;
            if self.eof() || self.at_marker() || ind < col {
                break;
            }
            if ind > col || (self.peek() == b'-' && self.blank_at(1)) {
                return Err(self.err("did not find expected key"));
            }
            let mut props = Props::default();
            self.read_props(&mut props, false)?;
            if self.peek() == b'?' && self.blank_at(1) {
                return Err(self.err("complex mapping keys (`? `) are not supported"));
            }
            let k = self.inline_value(col, false)?;
            if !(self.peek() == b':' && self.blank_at(1)) {
                return Err(self.err_at(k.pos, "simple key expected ':'"));
            }
            key = self.with_props(k, props);
        }
        self.depth -= 1;
        Ok(Node {
            val: Val::Map(entries),
            pos,
            raw: None,
        })
    }

    fn block_seq(&mut self, col: i32, pos: Pos) -> Res<Node> {
        self.enter()?;
        let mut items: Vec<Node> = Vec::new();
        loop {
            let dash = self.pos();
            self.bump();
            items.push(self.block_node(col, false, true, dash)?);
            let ind = self.skip_space(true)?;
            if self.eof() || self.at_marker() || ind < col {
                break;
            }
            if ind > col {
                return Err(self.err("did not find expected '-' indicator"));
            }
            if !(self.peek() == b'-' && self.blank_at(1)) {
                break;
            }
        }
        self.depth -= 1;
        Ok(Node {
            val: Val::Seq(items),
            pos,
            raw: None,
        })
    }

    // ---- flow context ----

    fn flow_collection(&mut self) -> Res<Node> {
        self.enter()?;
        let pos = self.pos();
        let map = self.peek() == b'{';
        let close = if map { b'}' } else { b']' };
        let missing = if map {
            "did not find expected ',' or '}'"
        } else {
            "did not find expected ',' or ']'"
        };
        self.bump();
        let mut items = Vec::new();
        let mut entries: Vec<(Node, Node)> = Vec::new();
        loop {
            self.skip_space(false)?;
            if self.peek() == close && !self.eof() {
                self.bump();
                break;
            }
            if self.eof() {
                let open = if map { "brace '{'" } else { "bracket '['" };
                return Err(self.err_at(pos, format!("unclosed {open}")));
            }
            if self.at_marker() {
                return Err(self.err(missing));
            }
            if map && self.peek() == b'?' && self.blank_at(1) {
                self.bump();
                self.skip_space(false)?;
            }
            let key = self.flow_node()?;
            self.skip_space(false)?;
            let value = if self.peek() == b':' {
                self.bump();
                Some(self.flow_value()?)
            } else {
                None
            };
            if map {
                if entries.iter().any(|(k, _)| k.val == key.val) {
                    return Err(self.err_at(key.pos, duplicate(&key)));
                }
                let at = self.pos();
                entries.push((key, value.unwrap_or_else(|| null_at(at))));
            } else if let Some(v) = value {
                let at = key.pos;
                items.push(Node {
                    val: Val::Map(vec![(key, v)]),
                    pos: at,
                    raw: None,
                });
            } else {
                items.push(key);
            }
            self.skip_space(false)?;
            match self.peek() {
                b',' => self.bump(),
                c if c == close && !self.eof() => {
                    self.bump();
                    break;
                }
                _ if self.eof() => {
                    let open = if map { "brace '{'" } else { "bracket '['" };
                    return Err(self.err_at(pos, format!("unclosed {open}")));
                }
                _ => return Err(self.err(missing)),
            }
        }
        self.depth -= 1;
        let val = if map {
            Val::Map(entries)
        } else {
            Val::Seq(items)
        };
        Ok(Node {
            val,
            pos,
            raw: None,
        })
    }

    fn flow_value(&mut self) -> Res<Node> {
        self.skip_space(false)?;
        if matches!(self.peek(), b',' | b'}' | b']') {
            return Ok(null_at(self.pos()));
        }
        self.flow_node()
    }

    fn flow_node(&mut self) -> Res<Node> {
        self.skip_space(false)?;
        let mut props = Props::default();
        self.read_props(&mut props, true)?;
        let n = match self.peek() {
            b',' | b']' | b'}' | b':' => null_at(self.pos()),
            _ if self.eof() => return Err(self.err("did not find expected node content")),
            _ => self.inline_value(-1, true)?,
        };
        Ok(self.with_props(n, props))
    }
}

/// Puts every node of an alias's copy at the alias.
fn relocate(n: &mut Node, pos: Pos) {
    n.pos = pos;
    match &mut n.val {
        Val::Seq(items) => items.iter_mut().for_each(|i| relocate(i, pos)),
        Val::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            relocate(k, pos);
            relocate(v, pos);
        }),
        _ => {}
    }
}

fn duplicate(key: &Node) -> String {
    match key.as_str() {
        Some(k) => format!("duplicate mapping key `{k}`"),
        None => "duplicate mapping key".to_string(),
    }
}
