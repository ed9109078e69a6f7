//! Parameter names compiled, once per action, into the tree the JSON, JSONARRAY and XML encoders compile into
//! the body's program (FORM: the names, encoded), and that program built with the content type's encoder.
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
use super::parameter::Parameter;
use super::program::{Builder, Program};
use super::{form, json, xml};
use crate::value::{push_json, Body};

use crate::limits::{MAX_PARAMETER_NAME_BYTES, MAX_PARAMETER_NAME_SEGMENTS};
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
    /// Longer than [`MAX_PARAMETER_NAME_BYTES`](crate::limits::MAX_PARAMETER_NAME_BYTES): the length in bytes.
    Bytes(usize),
    /// More dotted segments than [`MAX_PARAMETER_NAME_SEGMENTS`](crate::limits::MAX_PARAMETER_NAME_SEGMENTS): how many.
    Segments(usize),
}

impl NameError {
    pub(crate) fn new(name: &str, reason: impl Into<String>) -> Self {
        NameError { name: name.to_owned(), reason: reason.into(), limit: None }
    }
}

/// One action's body compiled for the content type it was compiled for: its names checked, then the program that
/// writes it ([`Program`]).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(super) content_type: ContentType,
    pub(super) program: Program,
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
        Shape { content_type, program: program(content_type, &Layout::empty(content_type), &[]) }
    }
}

impl Layout {
    /// The layout of no parameters, for a content type.
    pub(super) fn empty(content_type: ContentType) -> Self {
        match content_type {
            ContentType::Form => Layout::Pairs(Vec::new()),
            ContentType::Json | ContentType::JsonArray | ContentType::Xml => Layout::Tree(Vec::new()),
        }
    }
}

/// Validates the parameter names for a content type and compiles them, then the body's program.
pub(crate) fn compile(content_type: ContentType, parameters: &[Parameter]) -> Result<Shape, Vec<NameError>> {
    let layout = layout(content_type, parameters)?;
    Ok(Shape { content_type, program: program(content_type, &layout, parameters) })
}

/// Compiles the body of `content_type` for parameters whose names compiled into `layout`, with its encoder.
fn program(content_type: ContentType, layout: &Layout, parameters: &[Parameter]) -> Program {
    let mut builder = Builder::default();
    match (layout, content_type) {
        (Layout::Tree(entries), ContentType::Json) => json::compile(entries, parameters, false, &mut builder),
        (Layout::Tree(entries), ContentType::JsonArray) => json::compile(entries, parameters, true, &mut builder),
        (Layout::Tree(entries), ContentType::Xml) => xml::compile(entries, parameters, &mut builder),
        (Layout::Pairs(names), ContentType::Form) => form::compile(names, parameters, &mut builder),
        (Layout::Pairs(_), ContentType::Json | ContentType::JsonArray | ContentType::Xml)
        | (Layout::Tree(_), ContentType::Form) => {
            // Unreachable: `layout` builds the layout of its content type. The body of no parameters.
            return program(content_type, &Layout::empty(content_type), &[]);
        }
    }
    builder.finish()
}

/// Validates the parameter names for a content type and compiles them; see the module documentation.
pub(super) fn layout(content_type: ContentType, parameters: &[Parameter]) -> Result<Layout, Vec<NameError>> {
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
        Ok(layout)
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
mod tests;
