//! Parameter names compiled, once per action, into the tree the JSON, JSONARRAY and XML encoders walk.
//!
//! A name is split on `.` into segments. A segment of ASCII digits is an array index; any other segment is a key.
//! The rules, checked for every parameter and all reported together:
//! - a name is not empty (FORM checks nothing else: its names are sent verbatim);
//! - no segment is empty (`a..b`, `.a`, `a.` are rejected);
//! - the first segment is a key, since the body is an object at the top level;
//! - an index has no leading zero (`0`, `1`, `12`, not `01`);
//! - a name is not both a value and a parent (`customer` and `customer.name`);
//! - the children of one parent are all indexes or all keys;
//! - the indexes under one parent count up from 0 without gaps;
//! - XML only: every key is an XML 1.0 (fifth edition) `Name` without `:` (a colon would declare a namespace
//!   prefix), and no two indexes follow each other (`a.0.1`), since the item of an item has no element name.
//!
//! Before any of that, a name longer than [`MAX_PARAMETER_NAME_BYTES`] (every content type) or, for JSON,
//! JSONARRAY and XML, of more segments than [`MAX_PARAMETER_NAME_SEGMENTS`] is refused and left out of the tree.
//! The tree is built, checked and walked by recursion, one level per segment: that limit is what bounds the depth
//! of every recursion here and in the encoders, whatever the configuration holds.
//!
//! Two parameters with exactly the same name are reported by the action's own validation
//! (`ValidationError::DuplicateParameter`), not here; the tree keeps the first of them.
//!
//! The tree keeps keys in order of first appearance among the parameters and array items in index order; each
//! key carries its opening and closing text for its content type, written once here so rendering only copies it.

use std::collections::{BTreeMap, HashMap};

use super::content_type::ContentType;
use super::form;
use super::parameter::{Parameter, MAX_PARAMETER_NAME_BYTES, MAX_PARAMETER_NAME_SEGMENTS};
use crate::value::{push_json, Body};

use crate::shown::shown;

/// A parameter name that the content type cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameError {
    /// The parameter name, as written.
    pub(crate) name: String,
    /// Why it cannot be sent, and what to do: a sentence that follows "cannot be sent as XML: ".
    pub(crate) reason: String,
    /// The limit the name passes, if that is the problem (the action reports those with their own variants).
    pub(crate) limit: Option<NameLimit>,
}

/// A limit on parameter names that a name passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameLimit {
    /// Longer than [`MAX_PARAMETER_NAME_BYTES`](crate::payload::MAX_PARAMETER_NAME_BYTES): the length in bytes.
    Bytes(usize),
    /// More dotted segments than [`MAX_PARAMETER_NAME_SEGMENTS`](crate::payload::MAX_PARAMETER_NAME_SEGMENTS): how many.
    Segments(usize),
}

impl NameError {
    pub(crate) fn new(name: &str, reason: impl Into<String>) -> Self {
        NameError { name: name.to_owned(), reason: reason.into(), limit: None }
    }
}

/// The compiled parameter names of one action, for the content type they were compiled for.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(super) content_type: ContentType,
    pub(super) layout: Layout,
}

/// What the encoder of a content type walks.
#[derive(Debug, Clone)]
pub(super) enum Layout {
    /// FORM: each parameter's name, form-encoded, in parameter order.
    Pairs(Vec<Box<str>>),
    /// JSON, JSONARRAY and XML: the members of the top-level object.
    Tree(Vec<Entry>),
}

/// One key of an object and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// The key as written in the parameter name.
    pub(super) key: Box<str>,
    /// What is written before the member: `"key":` in JSON, `<key>` in XML.
    pub(super) open: Box<str>,
    /// What is written after the member (or after each item of an array in XML): `</key>` in XML, nothing in JSON.
    pub(super) close: Box<str>,
    /// The member.
    pub(super) node: Node,
}

/// A member of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// The value of the parameter at this index.
    Value(usize),
    /// An object with these members, in order of first appearance.
    Object(Vec<Entry>),
    /// An array with these items, in index order (indexes are contiguous from 0).
    Array(Vec<Node>),
}

impl Shape {
    /// A shape with no parameters, for a content type.
    pub(super) fn empty(content_type: ContentType) -> Self {
        let layout = match content_type {
            ContentType::Form => Layout::Pairs(Vec::new()),
            ContentType::Json | ContentType::JsonArray | ContentType::Xml => Layout::Tree(Vec::new()),
        };
        Shape { content_type, layout }
    }
}

/// Validates the parameter names for a content type and compiles them; see the module documentation.
pub(crate) fn compile(content_type: ContentType, parameters: &[Parameter]) -> Result<Shape, Vec<NameError>> {
    // (parameter index, problem), so that the problems come out in parameter order.
    let mut found: Vec<(usize, NameError)> = Vec::new();
    let tree = content_type != ContentType::Form;
    // Whether each name may enter the tree: not empty and within the limits.
    let mut fits = Vec::with_capacity(parameters.len());
    for (index, parameter) in parameters.iter().enumerate() {
        match check_limits(&parameter.name, tree) {
            Some(problem) => {
                found.push((index, problem));
                fits.push(false);
            }
            None => fits.push(true),
        }
    }
    let layout = match content_type {
        ContentType::Form => Layout::Pairs(parameters.iter().map(|p| form::encode_name(&p.name)).collect()),
        ContentType::Json | ContentType::JsonArray | ContentType::Xml => {
            let xml = content_type == ContentType::Xml;
            let mut root = Draft::new(0);
            for ((index, parameter), fits) in parameters.iter().enumerate().zip(fits) {
                if !fits {
                    continue;
                }
                match segments(&parameter.name, xml) {
                    Ok(path) => root.insert(&path, index),
                    Err(problems) => found.extend(problems.into_iter().map(|p| (index, p))),
                }
            }
            root.check(parameters, "", &mut found);
            Layout::Tree(root.into_entries(content_type))
        }
    };
    if found.is_empty() {
        Ok(Shape { content_type, layout })
    } else {
        found.sort_by_key(|(index, _)| *index);
        Err(found.into_iter().map(|(_, problem)| problem).collect())
    }
}

/// The problem of a name that is empty or passes a limit (the segment limit only for `tree` content types).
fn check_limits(name: &str, tree: bool) -> Option<NameError> {
    if name.is_empty() {
        return Some(NameError::new("", "the name is empty: give the parameter a name"));
    }
    if name.len() > MAX_PARAMETER_NAME_BYTES {
        let reason = format!("it is {} bytes long, but at most {MAX_PARAMETER_NAME_BYTES} are allowed", name.len());
        return Some(NameError { limit: Some(NameLimit::Bytes(name.len())), ..NameError::new(name, reason) });
    }
    // At most 256 dots: this cannot overflow.
    let segments = name.bytes().filter(|b| *b == b'.').count().saturating_add(1);
    if tree && segments > MAX_PARAMETER_NAME_SEGMENTS {
        let reason =
            format!("it has {segments} dotted parts, but names nest at most {MAX_PARAMETER_NAME_SEGMENTS} deep");
        return Some(NameError { limit: Some(NameLimit::Segments(segments)), ..NameError::new(name, reason) });
    }
    None
}

/// A segment of a parameter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

/// Splits a (non-empty) name into segments, or says everything that is wrong with them.
fn segments(name: &str, xml: bool) -> Result<Vec<Segment<'_>>, Vec<NameError>> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = name.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        let reason = if name.starts_with('.') {
            "it starts with a dot, which leaves an empty part: remove the dot or put a key before it"
        } else if name.ends_with('.') {
            "it ends with a dot, which leaves an empty part: remove the dot or put a key after it"
        } else {
            "it has two dots in a row, which leaves an empty part: remove one dot or put a key between them"
        };
        problems.push(NameError::new(name, reason));
    }
    let mut path = Vec::with_capacity(parts.len());
    let mut previous_index: Option<&str> = None;
    for (position, part) in parts.iter().copied().enumerate() {
        if part.is_empty() {
            previous_index = None;
            continue;
        }
        if !is_index(part) {
            if xml {
                if let Err(reason) = check_xml_name(part) {
                    problems.push(NameError::new(name, reason));
                }
            }
            path.push(Segment::Key(part));
            previous_index = None;
            continue;
        }
        if position == 0 {
            problems.push(NameError::new(
                name,
                format!(
                    "it starts with the array index \"{part}\", but the body is an object at the top level: \
                     start the name with a key, as in \"items.{part}\""
                ),
            ));
        } else if part.len() > 1 && part.starts_with('0') {
            problems.push(NameError::new(
                name,
                format!("the array index \"{part}\" has a leading zero: write indexes as 0, 1, 2 and so on"),
            ));
        } else if let (true, Some(before)) = (xml, previous_index) {
            problems.push(NameError::new(
                name,
                format!(
                    "it has two array indexes in a row (\"{before}.{part}\"), which XML cannot express because an \
                     item of an item has no element name: give the inner list a key, as in \"{before}.items.{part}\""
                ),
            ));
        }
        match part.parse::<usize>() {
            Ok(index) => path.push(Segment::Index(index)),
            Err(_) => problems.push(NameError::new(
                name,
                format!("the array index \"{part}\" is too large: number array items 0, 1, 2 and so on"),
            )),
        }
        previous_index = Some(part);
    }
    if problems.is_empty() {
        Ok(path)
    } else {
        Err(problems)
    }
}

/// Checks one key against the XML 1.0 (fifth edition) `Name` production, without `:`.
fn check_xml_name(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let Some(first) = chars.next() else { return Err("an element name is empty".to_owned()) };
    if key.contains(':') {
        return Err(format!(
            "the key \"{}\" contains ':', which XML reads as a namespace prefix: use '_' or '-' instead",
            shown(key)
        ));
    }
    if !is_name_start_char(first) {
        return Err(format!(
            "the key \"{}\" is not an XML element name: it must start with a letter or '_', not {first:?} \
             (U+{:04X})",
            shown(key),
            u32::from(first)
        ));
    }
    if let Some(bad) = chars.find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the key \"{}\" is not an XML element name: it contains {bad:?} (U+{:04X}); use letters, digits, \
             '_' or '-' instead",
            shown(key),
            u32::from(bad)
        ));
    }
    Ok(())
}

/// `NameStartChar` of XML 1.0 (fifth edition), section 2.3, without `:`.
pub(super) fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// `NameChar` of XML 1.0 (fifth edition), section 2.3, without `:`.
pub(super) fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The tree while it is being built and checked.
#[derive(Debug)]
struct Draft {
    /// The first parameter that reached this node.
    first: usize,
    /// The parameter whose name ends here.
    leaf: Option<usize>,
    /// The first parameter whose name goes on below this node.
    first_below: Option<usize>,
    keys: Vec<(String, Draft)>,
    key_positions: HashMap<String, usize>,
    indexes: BTreeMap<usize, Draft>,
}

impl Draft {
    fn new(first: usize) -> Self {
        Draft {
            first,
            leaf: None,
            first_below: None,
            keys: Vec::new(),
            key_positions: HashMap::new(),
            indexes: BTreeMap::new(),
        }
    }

    fn insert(&mut self, path: &[Segment<'_>], parameter: usize) {
        let Some((head, rest)) = path.split_first() else {
            // A second parameter with the same name: the action reports it; the first one is kept.
            self.leaf.get_or_insert(parameter);
            return;
        };
        self.first_below.get_or_insert(parameter);
        let child = match *head {
            Segment::Key(key) => match self.key_positions.get(key) {
                Some(&position) => &mut self.keys[position].1,
                None => {
                    self.key_positions.insert(key.to_owned(), self.keys.len());
                    self.keys.push((key.to_owned(), Draft::new(parameter)));
                    let last = self.keys.len() - 1;
                    &mut self.keys[last].1
                }
            },
            Segment::Index(index) => self.indexes.entry(index).or_insert_with(|| Draft::new(parameter)),
        };
        child.insert(rest, parameter);
    }

    /// Finds the structural problems: value and parent at once, keys mixed with indexes, gaps in indexes.
    fn check(&self, parameters: &[Parameter], path: &str, found: &mut Vec<(usize, NameError)>) {
        // Names and paths as messages show them: these sentences end up in `ValidationError`s.
        let raw = |index: usize| parameters.get(index).map_or("", |p| p.name.as_str());
        let name = |index: usize| shown(raw(index));
        if let (Some(leaf), Some(below)) = (self.leaf, self.first_below) {
            found.push((
                leaf,
                NameError::new(
                    raw(leaf),
                    format!(
                        "it is a value, but \"{}\" also puts values inside it: a name cannot be both a value and a \
                         parent, so rename one of them",
                        name(below)
                    ),
                ),
            ));
        }
        let first_key = self.keys.iter().map(|(_, child)| child.first).min();
        let first_index = self.indexes.values().map(|child| child.first).min();
        if let (Some(first_key), Some(first_index)) = (first_key, first_index) {
            let (later, earlier, later_is_key) =
                if first_key > first_index { (first_key, first_index, true) } else { (first_index, first_key, false) };
            let (this, other) = if later_is_key { ("a key", "an array index") } else { ("an array index", "a key") };
            found.push((
                later,
                NameError::new(
                    raw(later),
                    format!(
                        "below \"{}\" it uses {this} while \"{}\" uses {other}: the parts below one parent must be all \
                         keys or all array indexes",
                        shown(path),
                        name(earlier)
                    ),
                ),
            ));
        }
        let missing = self.indexes.keys().enumerate().find(|&(position, &index)| position != index);
        if let Some((missing, _)) = missing {
            if let Some((used, child)) = self.indexes.range(missing..).next() {
                found.push((
                    child.first,
                    NameError::new(
                        raw(child.first),
                        format!(
                            "it uses array index {used} below \"{}\", but index {missing} is missing: number the \
                             items 0, 1, 2 and so on without gaps",
                            shown(path)
                        ),
                    ),
                ));
            }
        }
        for (key, child) in &self.keys {
            let below = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            child.check(parameters, &below, found);
        }
        for (index, child) in &self.indexes {
            child.check(parameters, &format!("{path}.{index}"), found);
        }
    }

    /// The members of this node as an object (used for the root, whose children are keys).
    fn into_entries(self, content_type: ContentType) -> Vec<Entry> {
        self.keys
            .into_iter()
            .map(|(key, child)| {
                let (open, close) = match content_type {
                    ContentType::Xml => (format!("<{key}>"), format!("</{key}>")),
                    ContentType::Json | ContentType::JsonArray | ContentType::Form => {
                        let mut open = String::with_capacity(key.len() + 3);
                        // Without a limit nothing is full.
                        let _ = push_json(key.as_str(), &mut Body::unlimited(&mut open));
                        open.push(':');
                        (open, String::new())
                    }
                };
                Entry {
                    key: key.into_boxed_str(),
                    open: open.into_boxed_str(),
                    close: close.into_boxed_str(),
                    node: child.into_node(content_type),
                }
            })
            .collect()
    }

    fn into_node(self, content_type: ContentType) -> Node {
        // After a successful check exactly one of these holds; the order only matters for rejected shapes.
        if let Some(leaf) = self.leaf {
            Node::Value(leaf)
        } else if !self.keys.is_empty() || self.indexes.is_empty() {
            Node::Object(self.into_entries(content_type))
        } else {
            Node::Array(self.indexes.into_values().map(|child| child.into_node(content_type)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
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
        match compile(content_type, &params(names)) {
            Ok(Shape { layout: Layout::Tree(entries), .. }) => entries,
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
}
