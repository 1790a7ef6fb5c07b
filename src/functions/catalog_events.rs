//! `CatalogEvents`: an Event Grid trigger for catalog changes (Event Grid schema or CloudEvents).

use azfn::{Context, EventGridEvent};

/// Logs the event's type, subject and data.
pub async fn catalog_events(event: EventGridEvent, _ctx: Context) -> Result<(), azfn::Error> {
    tracing::info!(
        id = %event.id,
        kind = %event.event_type,
        subject = event.subject.as_deref().unwrap_or("-"),
        schema = ?event.schema,
        data = %event.data,
        "catalog event"
    );
    Ok(())
}
