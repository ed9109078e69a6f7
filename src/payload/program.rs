//! An action's body compiled, once, into a writer program: all the text that does not depend on the record
//! written ahead and escaped (keys, tags, separators, FORM names, literal values, the fixed text of templates),
//! and between those literals the record fields the body reads, each with how it is written.
//!
//! Rendering runs the program: it looks each field up once, copies the literals and escapes only what the record
//! brings. Nothing is parsed, walked or looked up by parameter name again. The encoders (`json`, `xml`, `form`)
//! compile their content type's program with a [`Builder`], giving each value the function of theirs that writes
//! it, so that this file depends on none of them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::record::Fields;
use crate::value::{Body, Full};

/// A body, compiled: see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    steps: Box<[Step]>,
    /// The literal after the last value.
    tail: Box<str>,
    /// How long all the literals are together.
    literal_len: usize,
    /// The record fields the steps read, each once, sorted (a step names its field by its index here).
    fields: Box<[Box<str>]>,
}

/// A literal, then a field's value.
#[derive(Debug, Clone)]
struct Step {
    literal: Box<str>,
    field: usize,
    write: WriteValue,
    depth: usize,
}

/// Writes a field's value (`None`: the record has no such field) into a body. `depth` is what the encoder gave
/// when it compiled the step: JSON counts the arrays and objects around the value; the others give 0.
pub(super) type WriteValue = fn(Option<&Value>, usize, &mut Body<'_>) -> Result<(), Full>;

/// Fields looked up on the stack when a program reads at most this many (most do).
const FIELDS_ON_STACK: usize = 32;

impl Program {
    /// About how long a body is: its literals, and some room for each value.
    pub(super) fn expected_len(&self) -> usize {
        self.steps.len().saturating_mul(16).saturating_add(self.literal_len)
    }

    /// Writes the body for a record; stops as soon as `out` is full.
    pub(super) fn run(&self, record: &Fields, out: &mut Body<'_>) -> Result<(), Full> {
        let mut on_stack = [None; FIELDS_ON_STACK];
        let mut on_heap = Vec::new();
        let values = match on_stack.get_mut(..self.fields.len()) {
            Some(values) => values,
            None => {
                on_heap.resize(self.fields.len(), None);
                &mut on_heap[..]
            }
        };
        self.look_up(record, values);
        for step in &*self.steps {
            out.push_str(&step.literal)?;
            (step.write)(values.get(step.field).copied().flatten(), step.depth, out)?;
        }
        out.push_str(&self.tail)
    }

    /// Finds the value of each of the program's fields in the record (`None` where it has none).
    ///
    /// serde_json's map keeps its keys sorted unless its `preserve_order` feature is on, so a record no more than
    /// a few times larger than what the program reads is walked once beside the program's sorted names (a merge:
    /// each key compared about once); otherwise each name is looked up in the map.
    fn look_up<'r>(&self, record: &'r Fields, values: &mut [Option<&'r Value>]) {
        if record.len() <= self.fields.len().saturating_mul(4) && maps_are_sorted() {
            let mut next = 0;
            'keys: for (key, value) in record {
                while let Some(name) = self.fields.get(next) {
                    match compare(name.as_bytes(), key.as_bytes()) {
                        // The record has no such field.
                        Ordering::Less => next += 1,
                        Ordering::Equal => {
                            if let Some(slot) = values.get_mut(next) {
                                *slot = Some(value);
                            }
                            next += 1;
                            continue 'keys;
                        }
                        // The program does not read this key.
                        Ordering::Greater => continue 'keys,
                    }
                }
                break;
            }
        } else {
            for (slot, name) in values.iter_mut().zip(&*self.fields) {
                *slot = record.get(&**name);
            }
        }
    }
}

/// `a.cmp(b)`, decided by the first bytes where they differ there (as most keys do) before anything is called.
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Whether serde_json's map iterates its keys in sorted order, as its default `BTreeMap` does (checked once: the
/// map type is the same for the whole build, but a host's dependencies may turn `preserve_order` on).
fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut map = Fields::new();
        for key in ["b", "c", "a"] {
            map.insert(key.to_owned(), Value::Null);
        }
        map.keys().map(String::as_str).eq(["a", "b", "c"])
    })
}

/// A program being compiled: literals are appended as they come, and each value closes the literal before it.
#[derive(Debug, Default)]
pub(super) struct Builder {
    /// The literal since the last value.
    text: String,
    literal_len: usize,
    steps: Vec<Step>,
    /// Field names in order of first use, and where each is in that list.
    fields: Vec<String>,
    positions: HashMap<String, usize>,
}

impl Builder {
    /// Appends literal text (already escaped for the content type).
    pub(super) fn literal(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends literal text that `write` writes into a body (unlimited: nothing is full).
    pub(super) fn literal_with(&mut self, write: impl FnOnce(&mut Body<'_>) -> Result<(), Full>) {
        // Without a limit nothing is full; a failed write would only leave out text, which cannot happen.
        let _ = write(&mut Body::unlimited(&mut self.text));
    }

    /// Appends the value of a record field, written by `write` (which is given `depth`).
    pub(super) fn field(&mut self, name: &str, write: WriteValue, depth: usize) {
        let field = match self.positions.get(name) {
            Some(&position) => position,
            None => {
                let position = self.fields.len();
                self.fields.push(name.to_owned());
                self.positions.insert(name.to_owned(), position);
                position
            }
        };
        self.literal_len = self.literal_len.saturating_add(self.text.len());
        let literal = std::mem::take(&mut self.text).into_boxed_str();
        self.steps.push(Step { literal, field, write, depth });
    }

    pub(super) fn finish(self) -> Program {
        let Builder { text, literal_len, mut steps, fields, positions: _ } = self;
        // Sort the names, and renumber the steps' fields to match.
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_by(|a, b| fields.get(*a).cmp(&fields.get(*b)));
        let mut renumbered = vec![0; fields.len()];
        for (sorted, &first_use) in order.iter().enumerate() {
            if let Some(slot) = renumbered.get_mut(first_use) {
                *slot = sorted;
            }
        }
        for step in &mut steps {
            step.field = renumbered.get(step.field).copied().unwrap_or(step.field);
        }
        let sorted = order.iter().filter_map(|&first_use| fields.get(first_use)).map(|name| name.as_str().into());
        Program {
            steps: steps.into_boxed_slice(),
            literal_len: literal_len.saturating_add(text.len()),
            tail: text.into_boxed_str(),
            fields: sorted.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the value's text, or `-` for a missing field.
    fn text(value: Option<&Value>, _: usize, out: &mut Body<'_>) -> Result<(), Full> {
        match value {
            Some(value) => crate::value::push_text(value, out),
            None => out.push_str("-"),
        }
    }

    #[test]
    fn fields_are_sorted_and_steps_follow_them() {
        let mut builder = Builder::default();
        builder.literal("<");
        builder.field("b", text, 0);
        builder.literal(">");
        builder.field("a", text, 0);
        builder.field("c", text, 0);
        builder.field("b", text, 0);
        let program = builder.finish();
        assert_eq!(&*program.fields, [Box::from("a"), Box::from("b"), Box::from("c")]);
        assert_eq!(
            program.steps.iter().map(|s| (&*s.literal, s.field)).collect::<Vec<_>>(),
            [("<", 1), (">", 0), ("", 2), ("", 1)]
        );
        let record: Fields = serde_json::json!({"a": 1, "b": "<x>"}).as_object().cloned().unwrap_or_default();
        let mut out = String::new();
        program.run(&record, &mut Body::unlimited(&mut out)).unwrap();
        assert_eq!(out, "<<x>>1-<x>");
    }

    proptest::proptest! {
        #[test]
        fn names_compare_as_their_bytes_do(a in "[ab\u{0}\u{FF}é]{0,20}", b in "[ab\u{0}\u{FF}é]{0,20}") {
            proptest::prop_assert_eq!(compare(a.as_bytes(), b.as_bytes()), a.cmp(&b));
            let common = format!("12345678{a}");
            proptest::prop_assert_eq!(compare(common.as_bytes(), format!("12345678{b}").as_bytes()), a.cmp(&b));
        }
    }

    #[test]
    fn a_program_reading_more_fields_than_fit_on_the_stack_looks_them_up_on_the_heap() {
        let mut builder = Builder::default();
        let names: Vec<String> = (0..FIELDS_ON_STACK * 2 + 1).map(|i| format!("f{i:03}")).collect();
        for name in names.iter().rev() {
            builder.field(name, text, 0);
            builder.literal(",");
        }
        let program = builder.finish();
        let record: Fields = names.iter().step_by(2).map(|name| (name.clone(), Value::from(name.as_str()))).collect();
        let mut out = String::new();
        program.run(&record, &mut Body::unlimited(&mut out)).unwrap();
        let expected: Vec<&str> =
            names.iter().enumerate().rev().map(|(i, name)| if i % 2 == 0 { name.as_str() } else { "-" }).collect();
        assert_eq!(out, format!("{},", expected.join(",")));
    }

    #[test]
    fn both_ways_of_looking_fields_up_agree() {
        assert!(maps_are_sorted(), "serde_json is built without preserve_order here");
        let mut builder = Builder::default();
        for name in ["m", "a", "z", "zz", "b", "", "é"] {
            builder.field(name, text, 0);
        }
        let program = builder.finish();
        let keys = ["", "a", "aa", "c", "m", "y", "zz", "é", "ü"];
        for count in 0..=keys.len() {
            let record: Fields =
                keys.iter().take(count).enumerate().map(|(i, k)| ((*k).to_owned(), Value::from(i))).collect();
            let mut merged = vec![None; program.fields.len()];
            program.look_up(&record, &mut merged);
            let looked_up: Vec<_> = program.fields.iter().map(|name| record.get(&**name)).collect();
            assert_eq!(merged, looked_up, "{count} keys");
        }
    }
}
