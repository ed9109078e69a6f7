//! Unit tests of `shape`.

use super::*;

fn params(names: &[&str]) -> Vec<Parameter> {
    names.iter().map(|name| Parameter::value(*name, 1)).collect()
}

fn errors(content_type: ContentType, names: &[&str]) -> Vec<(String, String)> {
    match compile(content_type, &params(names)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.name, e.reason)).collect(),
    }
}

fn tree(content_type: ContentType, names: &[&str]) -> Vec<Entry> {
    match layout(content_type, &params(names)) {
        Ok(Layout::Tree(entries)) => entries,
        other => panic!("{names:?} did not compile to a tree: {other:?}"),
    }
}

/// The tree as a compact string: `key=#i` for values, `key{...}` for objects, `key[...]` for arrays.
fn outline(entries: &[Entry]) -> String {
    fn show(node: &Node) -> String {
        match node {
            Node::Value(i) => format!("#{i}"),
            Node::Object(entries) => format!("{{{}}}", outline(entries)),
            Node::Array(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(",")),
        }
    }
    entries.iter().map(|e| format!("{}{}", e.key, show(&e.node))).collect::<Vec<_>>().join(",")
}

const TREES: [ContentType; 3] = [ContentType::Json, ContentType::JsonArray, ContentType::Xml];

#[test]
fn dotted_names_nest_in_order_of_first_appearance() {
    for ct in TREES {
        let entries =
            tree(ct, &["customer.name", "amount", "customer.id", "lines.1.sku", "lines.0.sku", "lines.0.qty"]);
        assert_eq!(outline(&entries), "customer{name#0,id#2},amount#1,lines[{sku#4,qty#5},{sku#3}]");
    }
}

#[test]
fn json_allows_any_key_and_nested_arrays() {
    let entries = tree(ContentType::Json, &["a b.0.0", "a b.0.1", "a b.1.0", "\"q\":x", "é.1x"]);
    assert_eq!(outline(&entries), "a b[[#0,#1],[#2]],\"q\":x#3,é{1x#4}");
    assert_eq!(&*entries[1].open, r#""\"q\":x":"#);
    assert_eq!(&*entries[1].close, "");
}

#[test]
fn xml_entries_carry_their_tags() {
    let entries = tree(ContentType::Xml, &["customer.name"]);
    assert_eq!((&*entries[0].open, &*entries[0].close), ("<customer>", "</customer>"));
}

#[test]
fn empty_names_and_empty_segments_are_rejected() {
    for ct in TREES {
        let found = errors(ct, &["", ".a", "a.", "a..b", "ok"]);
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["", ".a", "a.", "a..b"], "{ct}");
        assert!(found[0].1.contains("empty"));
        assert!(found[1].1.starts_with("it starts with a dot"));
        assert!(found[2].1.starts_with("it ends with a dot"));
        assert!(found[3].1.starts_with("it has two dots in a row"));
    }
    assert_eq!(errors(ContentType::Form, &["", "x"]).len(), 1);
}

#[test]
fn long_and_deep_names_are_refused_and_left_out_of_the_tree() {
    let deepest = vec!["a"; MAX_PARAMETER_NAME_SEGMENTS].join(".");
    let too_deep = format!("{deepest}.a");
    let longest = "a".repeat(MAX_PARAMETER_NAME_BYTES);
    let too_long = format!("{longest}a");
    for ct in TREES {
        assert!(errors(ct, &[&deepest, &longest]).is_empty(), "{ct}");
        let found = match compile(ct, &params(&[&too_deep, &too_long, "ok"])) {
            Ok(shape) => panic!("{ct}: accepted {shape:?}"),
            Err(found) => found,
        };
        let limits: Vec<_> = found.iter().map(|e| e.limit).collect();
        assert_eq!(
            limits,
            [
                Some(NameLimit::Segments(MAX_PARAMETER_NAME_SEGMENTS + 1)),
                Some(NameLimit::Bytes(MAX_PARAMETER_NAME_BYTES + 1))
            ],
            "{ct}"
        );
        assert!(found[0].reason.contains("at most 32 deep"), "{}", found[0].reason);
    }
    // FORM does not nest, so dots are not counted; the length still is.
    assert!(errors(ContentType::Form, &[&too_deep]).is_empty());
    assert_eq!(errors(ContentType::Form, &[&too_long]).len(), 1);
    // Even a thousand segments are refused before anything recurses over them.
    let found = errors(ContentType::Json, &[&vec!["a"; 1000].join(".")]);
    assert!(found[0].1.contains("1999 bytes"), "{found:?}");
}

#[test]
fn form_accepts_any_non_empty_name() {
    assert!(errors(ContentType::Form, &[".a", "a..b", "0", "a:b", "lines.0", "lines.2", "x", "x.y"]).is_empty());
}

#[test]
fn first_segment_cannot_be_an_index() {
    for ct in TREES {
        let found = errors(ct, &["0", "1.a"]);
        assert_eq!(found.len(), 2, "{ct}: {found:?}");
        assert!(found[0].1.contains("starts with the array index \"0\""));
    }
}

#[test]
fn indexes_have_no_leading_zeros() {
    for ct in TREES {
        let found = errors(ct, &["lines.00", "lines.01.sku"]);
        assert_eq!(found.len(), 2, "{ct}: {found:?}");
        assert!(found[1].1.contains("\"01\" has a leading zero"));
        assert!(errors(
            ct,
            &[
                "lines.0", "lines.1", "lines.10", "lines.2", "lines.3", "lines.4", "lines.5", "lines.6", "lines.7",
                "lines.8", "lines.9"
            ]
        )
        .is_empty());
    }
}

#[test]
fn huge_indexes_are_rejected_not_overflowed() {
    let found = errors(ContentType::Json, &["a.99999999999999999999999999"]);
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("too large"));
}

#[test]
fn a_name_cannot_be_a_value_and_a_parent() {
    for ct in TREES {
        let found = errors(ct, &["customer", "customer.name", "customer.id"]);
        assert_eq!(found.len(), 1, "{ct}: {found:?}");
        assert_eq!(found[0].0, "customer");
        assert!(found[0].1.contains("\"customer.name\" also puts values inside it"));
        // The order of the parameters does not matter.
        let found = errors(ct, &["lines.0.sku", "lines.0"]);
        assert_eq!(found.len(), 1, "{ct}: {found:?}");
        assert_eq!(found[0].0, "lines.0");
    }
}

#[test]
fn siblings_cannot_mix_keys_and_indexes() {
    for ct in TREES {
        let found = errors(ct, &["lines.0", "lines.x", "lines.y"]);
        assert_eq!(found.len(), 1, "{ct}: {found:?}");
        assert_eq!(found[0].0, "lines.x");
        assert!(found[0].1.contains("below \"lines\" it uses a key while \"lines.0\" uses an array index"));
        let found = errors(ct, &["a.b.x", "a.b.0"]);
        assert_eq!(found[0].0, "a.b.0");
        assert!(found[0].1.contains("below \"a.b\" it uses an array index"));
    }
}

#[test]
fn indexes_are_contiguous_from_zero() {
    for ct in TREES {
        let found = errors(ct, &["lines.0", "lines.2", "other.1"]);
        assert_eq!(found.len(), 2, "{ct}: {found:?}");
        assert_eq!(found[0].0, "lines.2");
        assert!(found[0].1.contains("index 1 is missing"));
        assert_eq!(found[1].0, "other.1");
        assert!(found[1].1.contains("index 0 is missing"));
    }
    assert!(errors(ContentType::Json, &["a.0.b.1", "a.0.b.0", "a.1"]).is_empty());
    assert_eq!(errors(ContentType::Json, &["a.0.b.1", "a.1.b.0"]).len(), 1);
}

#[test]
fn all_problems_are_reported_in_parameter_order() {
    let found = errors(ContentType::Xml, &["a.0.1", "b:c", "", "d", "d.e", "f..g", "h.1"]);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a.0.1", "b:c", "", "d", "f..g", "h.1"]);
}

#[test]
fn xml_rejects_two_indexes_in_a_row() {
    let found = errors(ContentType::Xml, &["a.0.0"]);
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("two array indexes in a row (\"0.0\")"), "{found:?}");
    assert!(errors(ContentType::Json, &["a.0.0"]).is_empty());
}

#[test]
fn xml_keys_must_be_xml_names_without_colons() {
    for bad in ["a:b", "-a", "1a", "a b", "a\tb", "·a", "a\u{7F}", "a\u{FFFE}", "a/b", "a>b", "a&b", "\u{D7}x"] {
        let found = errors(ContentType::Xml, &[bad]);
        assert_eq!(found.len(), 1, "{bad:?} was accepted");
        assert!(found[0].1.contains("is not an XML element name") || found[0].1.contains("contains ':'"));
        assert!(errors(ContentType::Json, &[bad]).is_empty(), "{bad:?} is a fine JSON key");
    }
    for good in ["_", "a-b", "a1", "é", "中文", "a·b", "a\u{300}", "x\u{203F}", "Ω", "\u{10000}", "xml_name"] {
        assert!(errors(ContentType::Xml, &[good]).is_empty(), "{good:?} was rejected");
    }
    let found = errors(ContentType::Xml, &["a:b"]);
    assert!(found[0].1.contains("namespace prefix"));
    let found = errors(ContentType::Xml, &["1a"]);
    assert!(found[0].1.contains("not '1' (U+0031)"), "{found:?}");
}

#[test]
fn name_char_ranges_follow_the_spec_at_their_edges() {
    let start_in = [
        'A',
        'Z',
        'a',
        'z',
        '_',
        '\u{C0}',
        '\u{D6}',
        '\u{D8}',
        '\u{F6}',
        '\u{F8}',
        '\u{2FF}',
        '\u{370}',
        '\u{37D}',
        '\u{37F}',
        '\u{1FFF}',
        '\u{200C}',
        '\u{200D}',
        '\u{2070}',
        '\u{218F}',
        '\u{2C00}',
        '\u{2FEF}',
        '\u{3001}',
        '\u{D7FF}',
        '\u{F900}',
        '\u{FDCF}',
        '\u{FDF0}',
        '\u{FFFD}',
        '\u{10000}',
        '\u{EFFFF}',
    ];
    let start_out = [
        ':',
        '-',
        '.',
        '0',
        '9',
        '\u{B7}',
        '\u{D7}',
        '\u{F7}',
        '\u{300}',
        '\u{36F}',
        '\u{37E}',
        '\u{2000}',
        '\u{200B}',
        '\u{200E}',
        '\u{206F}',
        '\u{2190}',
        '\u{2BFF}',
        '\u{2FF0}',
        '\u{3000}',
        '\u{E000}',
        '\u{F8FF}',
        '\u{FDD0}',
        '\u{FDEF}',
        '\u{FFFE}',
        '\u{FFFF}',
        '\u{F0000}',
        ' ',
        '@',
    ];
    for c in start_in {
        assert!(is_name_start_char(c) && is_name_char(c), "{c:?}");
    }
    for c in start_out {
        assert!(!is_name_start_char(c), "{c:?}");
    }
    for c in ['-', '.', '0', '9', '\u{B7}', '\u{300}', '\u{36F}', '\u{203F}', '\u{2040}'] {
        assert!(is_name_char(c), "{c:?}");
    }
    for c in [':', '\u{D7}', '\u{F7}', '\u{2041}', '\u{203E}', '\u{FFFE}', ' ', '/'] {
        assert!(!is_name_char(c), "{c:?}");
    }
}

#[test]
fn duplicate_names_keep_the_first_parameter() {
    let entries = tree(ContentType::Json, &["a.b", "a.b"]);
    assert_eq!(outline(&entries), "a{b#0}");
}
