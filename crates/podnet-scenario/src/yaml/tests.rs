//! The parser against what serde-saphyr (the parser it replaced) gave for the same text.

use super::parse_stream;
use crate::node::{Node, Pos, Val};

fn one(text: &str) -> Node {
    let mut docs = parse_stream(text).unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    docs.remove(0)
}

fn at(n: &Node, path: &str) -> Val {
    n.get_path(path)
        .unwrap_or_else(|| panic!("{path}"))
        .val
        .clone()
}

fn items(n: &Node, path: &str) -> Vec<Val> {
    match at(n, path) {
        Val::Seq(items) => items.into_iter().map(|i| i.val).collect(),
        v => panic!("{path}: {v:?}"),
    }
}

fn s(v: &str) -> Val {
    Val::Str(v.to_string())
}

fn pos(line: u32, col: u32) -> Pos {
    Pos { line, col }
}

#[test]
fn plain_scalars_follow_the_core_schema() {
    let d = one(
        "a: 0x1F\nb: 0o17\nc: 0123\nd: -12\ne: +5\nf: 1.5e3\ng: .inf\nh: -.inf\ni: .nan\nj: ~\n\
         k: True\nl: yes\nm: 1_000\nn: 99999999999999999999\no: 0b101\np: 1e999\nq: nginx:1.25\n",
    );
    assert_eq!(at(&d, "a"), Val::UInt(31));
    assert_eq!(at(&d, "b"), Val::UInt(15));
    assert_eq!(at(&d, "c"), s("0123"));
    assert_eq!(at(&d, "d"), Val::Int(-12));
    assert_eq!(at(&d, "e"), Val::UInt(5));
    assert_eq!(at(&d, "f"), Val::Float(1500.0));
    assert_eq!(at(&d, "g"), s(".inf"));
    assert_eq!(at(&d, "h"), s("-.inf"));
    assert_eq!(at(&d, "i"), s(".nan"));
    assert_eq!(at(&d, "j"), Val::Null);
    assert_eq!(at(&d, "k"), Val::Bool(true));
    assert_eq!(at(&d, "l"), s("yes"));
    assert_eq!(at(&d, "m"), Val::UInt(1000));
    assert_eq!(at(&d, "n"), Val::Float(1e20));
    assert_eq!(at(&d, "o"), Val::UInt(5));
    assert_eq!(at(&d, "p"), s(".inf"));
    assert_eq!(at(&d, "q"), s("nginx:1.25"));
    assert_eq!(d.get("a").unwrap().raw.as_deref(), Some("0x1F"));
}

#[test]
fn quoted_and_multi_line_scalars() {
    let d = one(
        "s: 'it''s\n  folded'\nd: \"tab\\there \\u00e9 \\x41\n  next \\\n  joined\"\n\
         m: \"multi\n   line  \n\n   para\"\np: multi\n  line\n  plain\n\n  with blank\nn: 1\n",
    );
    assert_eq!(at(&d, "s"), s("it's folded"));
    assert_eq!(at(&d, "d"), s("tab\there \u{e9} A next joined"));
    assert_eq!(at(&d, "m"), s("multi line\npara"));
    assert_eq!(at(&d, "p"), s("multi line plain\nwith blank"));
    assert_eq!(at(&d, "n"), Val::UInt(1));
}

#[test]
fn block_scalars() {
    let d = one(
        "a: |\n  line one\n    indented\n  line three\n\nb: >\n  folded\n  text\n\n  new para\n\
         c: |-\n  stripped\nf: >-\n  folded\n   more indented\n  back\n\n  para\ng: |2\n    two extra\n\
         h: >+\n  keep\n\ni: end\n",
    );
    assert_eq!(at(&d, "a"), s("line one\n  indented\nline three\n"));
    assert_eq!(d.get("a").unwrap().pos, pos(2, 3));
    assert_eq!(at(&d, "b"), s("folded text\nnew para\n"));
    assert_eq!(at(&d, "c"), s("stripped"));
    assert_eq!(at(&d, "f"), s("folded\n more indented\nback\npara"));
    assert_eq!(at(&d, "g"), s("  two extra\n"));
    assert_eq!(at(&d, "h"), s("keep\n\n"));
}

#[test]
fn collections_anchors_and_positions() {
    let d = one(
        "key:\n- a\n- b\nflow: {x: 1, y: [a, b], z}\npairs: [a: 1, c]\nbase: &x\n  b: 1\n\
         copy: *x\ntagged: !!str true\nempty:\nitems:\n  - {p: 1}\n",
    );
    assert_eq!(items(&d, "key"), vec![s("a"), s("b")]);
    assert_eq!(at(&d, "flow.z"), Val::Null);
    assert_eq!(d.get_path("copy.b").unwrap().pos, pos(8, 7));
    assert_eq!(at(&d, "copy.b"), Val::UInt(1));
    assert_eq!(at(&d, "tagged"), s("true"));
    assert_eq!(d.get("empty").unwrap().pos, pos(10, 6));
    // A mapping value's sequence sits two columns right of its key, as serde-saphyr put it.
    assert_eq!(d.get("items").unwrap().pos, pos(12, 3));
    assert_eq!(d.get("key").unwrap().pos, pos(2, 3));
    let Val::Seq(pairs) = at(&d, "pairs") else {
        panic!()
    };
    assert_eq!(pairs[0].get("a").unwrap().val, Val::UInt(1));
}

#[test]
fn documents_directives_and_line_ends() {
    let docs = parse_stream("%YAML 1.2\n---\na: 1\n...\n---\nb: 2\n---\n---\n~\n").unwrap();
    assert_eq!(docs.len(), 2);
    let docs = parse_stream("\u{feff}a: 1\r\nb:\r\n  - x\r\n  - \"y\"\r\n").unwrap();
    assert_eq!(items(&docs[0], "b"), vec![s("x"), s("y")]);
    assert_eq!(at(&docs[0], "a"), Val::UInt(1));
}

#[test]
fn errors_and_their_positions() {
    let e = |t: &str| parse_stream(t).unwrap_err();
    assert_eq!(e("a: 1\na: 2\n").pos, pos(2, 1));
    assert!(e("a: 1\na: 2\n")
        .message
        .contains("duplicate mapping key `a`"));
    assert_eq!(e("x: [1, 2\n").message, "unclosed bracket '['");
    assert_eq!(e("x: [1, 2\n").pos, pos(1, 4));
    assert_eq!(e("x: \"open\n").message, "unclosed quote");
    assert_eq!(e("a:\n  b: 1\n c: 2\n").pos, pos(3, 2));
    assert!(e("a: b: c\n")
        .message
        .contains("mapping values are not allowed"));
    assert_eq!(e("a:\n  b: 1\n  multi line\n    plain\n").pos, pos(3, 3));
    assert!(e("a: *nothing\n").message.contains("unknown anchor"));
    let deep = "[".repeat(200);
    assert!(e(&deep).message.contains("nesting deeper"));
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    assert!(e(bomb).message.contains("aliases expand"));
}
