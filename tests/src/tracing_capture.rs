//! A `tracing` subscriber that records spans and events, for the tests of memokit's `tracing`
//! feature.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Field name → value (`Debug` values formatted with `{:?}`).
pub type Fields = HashMap<String, String>;

/// A span as created, with the fields recorded since.
#[derive(Debug, Clone)]
pub struct SpanSeen {
    /// Its name.
    pub name: &'static str,
    /// Its target.
    pub target: String,
    /// Its fields.
    pub fields: Fields,
}

/// An event.
#[derive(Debug, Clone)]
pub struct EventSeen {
    /// Its target.
    pub target: String,
    /// Its level.
    pub level: tracing::Level,
    /// Its fields, with the message as `message`.
    pub fields: Fields,
    /// The span the event happened in, if any.
    pub span: Option<u64>,
}

/// Everything captured.
#[derive(Debug, Default)]
pub struct Seen {
    /// Spans by id, in creation order of the ids.
    pub spans: HashMap<u64, SpanSeen>,
    /// Events in order.
    pub events: Vec<EventSeen>,
    entered: Vec<u64>,
}

/// The subscriber; clones share what they saw. It keeps one stack of entered spans for all
/// threads, so an event's `span` is only meaningful with one thread traced (`capture`).
#[derive(Clone, Default)]
pub struct Capture {
    seen: Arc<Mutex<Seen>>,
    next_id: Arc<AtomicU64>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let span = SpanSeen {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_string(),
            fields,
        };
        self.seen.lock().unwrap().spans.insert(id, span);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.seen.lock().unwrap();
        let span = seen.spans.get_mut(&span.into_u64()).expect("a known span");
        values.record(&mut Collect(&mut span.fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        let mut seen = self.seen.lock().unwrap();
        let span = seen.entered.last().copied();
        seen.events.push(EventSeen {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            fields,
            span,
        });
    }

    fn enter(&self, span: &Id) {
        self.seen.lock().unwrap().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut seen = self.seen.lock().unwrap();
        let at = seen.entered.iter().rposition(|&id| id == span.into_u64());
        seen.entered.remove(at.expect("exit of an entered span"));
    }
}

impl Capture {
    /// What was seen so far (which is forgotten).
    pub fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Runs `f` with a fresh capture as this thread's subscriber; returns what it saw.
pub fn capture(f: impl FnOnce()) -> Seen {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), f);
    capture.take()
}
