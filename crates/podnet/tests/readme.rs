//! The README's Rust API listing is the example file, verbatim.

#[test]
fn readme_api_listing_is_the_example() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/two_nodes.rs");
    let start = readme
        .find("<!-- api-example -->\n```rust\n")
        .expect("api-example marker")
        + "<!-- api-example -->\n```rust\n".len();
    let end = readme[start..]
        .find("```\n<!-- /api-example -->")
        .expect("end marker")
        + start;
    assert_eq!(
        &readme[start..end],
        example,
        "README listing differs from examples/two_nodes.rs"
    );
}
