//! Rendering a 20-parameter action, per content type, beside the bare serializer writing prebuilt data.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use crm_webhooks::payload::{ContentType, Parameter};
use crm_webhooks::{Fields, WebhookAction};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{json, Value};

fn fields() -> Fields {
    let mut fields = Fields::new();
    for i in 0..20 {
        let value = match i % 4 {
            0 => json!(format!("Text <{i}> & \"more\" text")),
            1 => json!(1200.5 + f64::from(i)),
            2 => json!(i % 3 == 0),
            _ => json!(i * 1000),
        };
        fields.insert(format!("f{i}"), value);
    }
    fields
}

/// Names for the 20 parameters: ten top-level, five under `customer`, five array items under `lines`.
fn name(i: usize) -> String {
    match i {
        0..=9 => format!("p{i}"),
        10..=14 => format!("customer.c{i}"),
        _ => format!("lines.{}.sku", i - 15),
    }
}

fn action(content_type: ContentType) -> WebhookAction {
    let mut builder = WebhookAction::builder("bench", "https://example.com/hook", content_type);
    for i in 0..20 {
        let parameter = if i % 5 == 4 {
            Parameter::template(name(i), &format!("Deal ${{f{i}}} won")).unwrap()
        } else {
            Parameter::field(name(i), format!("f{i}"))
        };
        builder = builder.parameter(parameter);
    }
    builder.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let fields = fields();
    let values: Vec<Value> = (0..20).map(|i| fields[&format!("f{i}")].clone()).collect();
    let texts: Vec<(String, String)> = (0..20)
        .map(|i| {
            let text = match &values[i] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name(i), text)
        })
        .collect();
    let mut nested = serde_json::Map::new();
    for (i, value) in values.iter().enumerate() {
        nested.insert(name(i), value.clone());
    }
    let prebuilt_json = Value::Object(nested);

    let mut group = c.benchmark_group("encode");
    for content_type in [ContentType::Json, ContentType::JsonArray, ContentType::Xml, ContentType::Form] {
        let action = action(content_type);
        group.bench_function(format!("render/{content_type}"), |b| b.iter(|| action.render(black_box(&fields))));
    }
    group.bench_function("serde_json::to_vec/prebuilt", |b| {
        b.iter(|| serde_json::to_vec(black_box(&prebuilt_json)).unwrap())
    });
    group.bench_function("serde_urlencoded::to_string/prebuilt", |b| {
        b.iter(|| serde_urlencoded::to_string(black_box(&texts)).unwrap())
    });
    group.bench_function("quick_xml::Writer/prebuilt", |b| {
        b.iter(|| {
            let mut writer = quick_xml::Writer::new(Vec::with_capacity(1024));
            writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).unwrap();
            writer.write_event(Event::Start(BytesStart::new("record"))).unwrap();
            for (name, text) in black_box(&texts) {
                writer.write_event(Event::Start(BytesStart::new(name.as_str()))).unwrap();
                writer.write_event(Event::Text(BytesText::new(text))).unwrap();
                writer.write_event(Event::End(BytesEnd::new(name.as_str()))).unwrap();
            }
            writer.write_event(Event::End(BytesEnd::new("record"))).unwrap();
            writer.into_inner()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
