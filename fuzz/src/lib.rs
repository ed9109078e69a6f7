//! Helpers shared by the fuzz targets: structured inputs (`arbitrary`) that become JSON values, field names,
//! dates and parameter names, and independent readings of the bodies the encoders write.

use arbitrary::Arbitrary;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Number, Value};

/// The time zones every target evaluates in: UTC, a zone west of UTC with DST, the zone furthest east (+14) and
/// one of the furthest west (-11).
pub const ZONES: [Tz; 4] = [Tz::UTC, Tz::America__Los_Angeles, Tz::Pacific__Kiritimati, Tz::Pacific__Pago_Pago];

/// A fixed "now": 2026-11-29 10:00 UTC.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

/// Field names the fixed conditions and actions read, so that inputs hit them often.
pub const FIELD_NAMES: [&str; 12] =
    ["stage", "amount", "close_date", "tags", "flag", "name", "notes", "created", "due", "count", "", "x y"];

/// Text that means something to the crate: dates at the edges of chrono's range, numbers, booleans, markup.
pub const INTERESTING: [&str; 44] = [
    "",
    " ",
    "Closed Won",
    "closed won",
    "true",
    "FALSE",
    "yes",
    "off",
    "1",
    "0",
    "1200.50",
    "-0",
    "1e308",
    "1e309",
    "NaN",
    "inf",
    "9007199254740993",
    "2026-11-29",
    "2026-11-29 00:30:00",
    "2026-11-29T23:59:59Z",
    "2026-03-08 02:30",
    "2026-11-01T01:30",
    "+262143-12-31",
    "-262144-01-01",
    "+262142-12-31T23:59:59Z",
    "-262143-01-01T00:00:00Z",
    "+262143-12-31 23:59:59",
    "-262144-01-01 00:00",
    "262143-12-31",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
    "0000-01-01T00:00:00-12:00",
    "0000-01-01",
    "2026-02-30",
    "2026-11-29T10:00:00.999999999Z",
    "2026-11-29T10:00:60Z",
    "<a>&amp;</a>]]>",
    "\r\n\t",
    "\u{0}\u{1}\u{b}\u{FFFE}\u{FFFF}",
    "${stage}",
    "$amount$$",
    "é中😀",
    "a.b.0",
    "İ",
];

/// Picks from a list by an index that may be out of range.
pub fn pick<T: Copy>(list: &[T], index: u8) -> T {
    list[usize::from(index) % list.len()]
}

/// A field name: one of [`FIELD_NAMES`] most of the time, or any text.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbKey {
    Known(u8),
    Raw(String),
}

impl ArbKey {
    pub fn name(&self) -> String {
        match self {
            ArbKey::Known(i) => pick(&FIELD_NAMES, *i).to_owned(),
            ArbKey::Raw(s) => s.clone(),
        }
    }
}

/// A date as text, in one of the forms the criteria read (and a few they do not), with any year.
#[derive(Arbitrary, Debug, Clone)]
pub struct ArbDate {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
    pub offset_minutes: i16,
    pub form: u8,
}

impl ArbDate {
    pub fn text(&self) -> String {
        // Years around chrono's edges more often than not.
        let year = match self.year % 4 {
            0 => self.year,
            1 => 262_143 - (self.year / 4).rem_euclid(3),
            2 => -262_144 + (self.year / 4).rem_euclid(3),
            _ => 1970 + (self.year / 4) % 100,
        };
        let (month, day) = (1 + self.month % 13, 1 + self.day % 32);
        let (hour, minute, second) = (self.hour % 25, self.minute % 61, self.second % 61);
        let y = if (0..=9999).contains(&year) { format!("{year:04}") } else { format!("{year:+}") };
        let date = format!("{y}-{month:02}-{day:02}");
        let offset = i32::from(self.offset_minutes) % (24 * 60);
        let sign = if offset < 0 { '-' } else { '+' };
        let zone = format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
        match self.form % 7 {
            0 => date,
            1 => format!("{date} {hour:02}:{minute:02}:{second:02}"),
            2 => format!("{date}T{hour:02}:{minute:02}"),
            3 => format!("{date}T{hour:02}:{minute:02}:{second:02}Z"),
            4 => format!("{date}T{hour:02}:{minute:02}:{second:02}.{}{zone}", self.nanos % 1_000_000_000),
            5 => format!("{date}T{hour:02}:{minute:02}:{second:02}{zone}"),
            _ => format!(" {date} {hour:02}:{minute:02} "),
        }
    }
}

/// A JSON value. Containers nest as deep as the input allows, up to [`MAX_DEPTH`]; `Deep` wraps a value in
/// arrays just around the crate's own depth limit of 128.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbValue {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Interesting(u8),
    Date(ArbDate),
    Array(Vec<ArbValue>),
    Object(Vec<(ArbKey, ArbValue)>),
    Deep(u8, Box<ArbValue>),
}

/// How deep [`ArbValue::to_value`] nests containers before it writes null (the `Deep` arrays aside).
pub const MAX_DEPTH: usize = 24;

impl ArbValue {
    pub fn to_value(&self) -> Value {
        self.at(0)
    }

    fn at(&self, depth: usize) -> Value {
        match self {
            ArbValue::Null => Value::Null,
            ArbValue::Bool(b) => Value::Bool(*b),
            ArbValue::I64(n) => Value::from(*n),
            ArbValue::U64(n) => Value::from(*n),
            ArbValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            ArbValue::Str(s) => Value::String(s.clone()),
            ArbValue::Interesting(i) => Value::String(pick(&INTERESTING, *i).to_owned()),
            ArbValue::Date(d) => Value::String(d.text()),
            _ if depth >= MAX_DEPTH => Value::Null,
            ArbValue::Array(items) => Value::Array(items.iter().map(|v| v.at(depth + 1)).collect()),
            ArbValue::Object(members) => {
                Value::Object(members.iter().map(|(k, v)| (k.name(), v.at(depth + 1))).collect())
            }
            ArbValue::Deep(n, inner) => {
                // 126 to 131 arrays around a scalar or a shallow container (not around another `Deep`: a chain of
                // them would nest thousands deep, and serde_json's own `json!`, clone and drop recurse per level).
                let mut value = match **inner {
                    ArbValue::Deep(..) => Value::Null,
                    _ => inner.at(MAX_DEPTH - 1),
                };
                for _ in 0..(126 + usize::from(*n % 6)) {
                    value = Value::Array(vec![value]);
                }
                value
            }
        }
    }
}

/// A value nested `depth` arrays deep, built without recursion. Only the crate may see it: serde_json's `Clone`,
/// `Debug`, `PartialEq` and `Drop` recurse once per level (take it apart with [`dismantle`]).
pub fn very_deep(depth: usize) -> Value {
    let mut value = Value::String("x".to_owned());
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

/// Fields of a record.
pub fn fields_of(members: &[(ArbKey, ArbValue)]) -> Map<String, Value> {
    members.iter().map(|(k, v)| (k.name(), v.to_value())).collect()
}

/// An instant from the input: often at or near the ends of chrono's range.
pub fn instant_of(seconds: i64, form: u8) -> DateTime<Utc> {
    match form % 4 {
        0 => DateTime::<Utc>::MAX_UTC - chrono::TimeDelta::seconds(seconds.rem_euclid(200_000)),
        1 => DateTime::<Utc>::MIN_UTC + chrono::TimeDelta::seconds(seconds.rem_euclid(200_000)),
        2 => fixed_now() + chrono::TimeDelta::seconds(seconds % 1_000_000_000),
        _ => DateTime::from_timestamp(seconds, 0).unwrap_or_else(fixed_now),
    }
}

/// How many containers nest in a value (0 for a scalar), found without recursion.
pub fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(map) => map.values().collect(),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        pending.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    deepest
}

/// The crate's documented depth limit for values it writes.
pub const MAX_VALUE_DEPTH: usize = 128;

/// Drops a value without recursion (serde_json drops one level per call).
pub fn dismantle(value: Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => pending.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Text as the crate documents it.

/// A value as text, per the crate's documentation: strings as is, numbers without a trailing `.0`, booleans,
/// null as nothing, containers as compact JSON (nothing when they nest deeper than 128).
#[derive(Debug, Clone)]
pub enum Expected {
    Exact(String),
    /// A finite float: the text parses back to it and has no trailing `.0`.
    Float(f64),
    /// A container: the text is its JSON.
    Json(Value),
}

impl Expected {
    /// `xml`: what XML element text reads as (characters XML cannot carry replaced).
    pub fn of(value: &Value, xml: bool) -> Expected {
        let clean = |s: &str| if xml { xml_clean(s, true) } else { s.to_owned() };
        match value {
            Value::Null => Expected::Exact(String::new()),
            Value::Bool(b) => Expected::Exact(b.to_string()),
            Value::String(s) => Expected::Exact(clean(s)),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => Expected::Float(f),
                _ => Expected::Exact(n.to_string()),
            },
            _ if nesting(value) > MAX_VALUE_DEPTH => Expected::Exact(String::new()),
            Value::Array(_) | Value::Object(_) => {
                Expected::Json(if xml { map_strings(value, &|s| xml_clean(s, false)) } else { value.clone() })
            }
        }
    }

    pub fn check(&self, actual: &str) -> Result<(), String> {
        let ok = match self {
            Expected::Exact(text) => text == actual,
            Expected::Float(f) => actual.parse::<f64>().ok() == Some(*f) && !actual.ends_with(".0"),
            Expected::Json(value) => parse_json(actual).ok().as_ref() == Some(value),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {self:?}, found {actual:?}"))
        }
    }
}

fn map_strings(value: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (f(k), map_strings(v, f))).collect()),
        other => other.clone(),
    }
}

/// Parses JSON without serde_json's depth limit.
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::Deserialize as _;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------------------------------
// XML, read independently.

/// XML 1.0 `Char`.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// XML 1.0 (fifth edition) `NameStartChar`.
pub fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (fifth edition) `NameChar`.
pub fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// An XML `Name` without `:` (the crate refuses namespace prefixes).
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| is_name_start_char(c) && c != ':') && chars.all(|c| is_name_char(c) && c != ':')
}

/// What XML can carry of a text: characters outside `Char` become U+FFFD (controls only when `controls`).
pub fn xml_clean(text: &str, controls: bool) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c if controls && !is_xml_char(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

/// Reads an XML body with quick-xml: the declaration, then one root element; names must be XML names, every
/// character an XML 1.0 character, references resolved, no attributes, no text outside the root.
pub fn parse_xml(body: &str) -> Result<Element, String> {
    use quick_xml::events::Event;
    const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    if !body.starts_with(DECLARATION) {
        return Err(format!("no declaration: {body:?}"));
    }
    if let Some(bad) = body.chars().find(|c| !is_xml_char(*c)) {
        return Err(format!("{bad:?} is not an XML 1.0 character"));
    }
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut declared = false;
    loop {
        let event = reader.read_event().map_err(|e| format!("{e} in {body:?}"))?;
        match event {
            Event::Decl(decl) => {
                let version = decl.version().map_err(|e| e.to_string())?;
                let encoding = decl.encoding().transpose().map_err(|e| e.to_string())?;
                if version != "1.0" || encoding.as_deref() != Some("UTF-8") || declared || root.is_some() {
                    return Err(format!("bad declaration {decl:?}"));
                }
                declared = true;
            }
            Event::Start(start) => {
                let name: String = start.name().as_ref().to_owned();
                if !is_xml_name(&name) {
                    return Err(format!("{name:?} is not an XML name"));
                }
                if start.attributes().next().is_some() {
                    return Err(format!("attributes on {name}"));
                }
                if root.is_some() {
                    return Err("two roots".into());
                }
                stack.push(Element { name, text: String::new(), children: Vec::new() });
            }
            Event::End(end) => {
                let element = stack.pop().ok_or("unbalanced end")?;
                if end.name().as_ref() != element.name {
                    return Err(format!("</{:?}> closes <{}>", end.name(), element.name));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err("two roots".into()),
                }
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                match stack.last_mut() {
                    Some(element) => element.text.push_str(&content),
                    None => return Err(format!("text outside the root: {content:?}")),
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) if is_xml_char(c) => c.to_string(),
                    Some(c) => return Err(format!("reference to the forbidden character {c:?}")),
                    None => quick_xml::escape::resolve_xml_entity(&reference)
                        .ok_or_else(|| format!("unknown entity {reference:?}"))?
                        .to_owned(),
                };
                stack.last_mut().ok_or("reference outside the root")?.text.push_str(&resolved);
            }
            Event::Eof => break,
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    if !stack.is_empty() || !declared {
        return Err("unclosed elements or no declaration".into());
    }
    root.ok_or_else(|| "no root element".to_owned())
}
