//! The HTTP management API, shaped like Durable Functions' (served by the app's `Orchestrators`
//! function on the route `orchestrators/{*path}`, so under `api/orchestrators/...`):
//!
//! | request | what |
//! |---|---|
//! | `POST {name}` or `POST {name}/{instanceId}` | start; 202, `Location`, and the management URIs |
//! | `GET instances` | list; `runtimeStatus`, `createdTimeFrom`, `createdTimeTo`, `namePrefix`, `top`; paging by `x-ms-continuation-token` |
//! | `GET instances/{id}` | status; 202 while running, 200 when done; `showHistory=true` adds `historyEvents` |
//! | `POST instances/{id}/raiseEvent/{event}` | raise an event (the body is its data) |
//! | `POST instances/{id}/terminate?reason=` | terminate |
//! | `POST instances/{id}/suspend`, `.../resume` | suspend, resume |
//! | `DELETE instances/{id}` | purge a finished instance |
//! | `DELETE instances?createdTimeFrom=&createdTimeTo=&runtimeStatus=` | purge the finished instances created in the range (`createdTimeFrom` required; by default Completed, Failed and Terminated); `{"instancesDeleted": n}` |
//! | `POST instances/{id}/restart?restartWithNewInstanceId=` | start a finished instance again with its original input, under a new id (the default) or its own; 202 and the management URIs |
//! | `GET poison`, `POST poison/redrive` | parked messages of the hub's queues, and sending them back |
//! | `GET retention` | the retention policy, and this process's last pass ([`retention`](super::retention)) |
//! | `GET versions` | every version of every orchestrator: registered here, taken by new starts, instances in flight, removable ([`DurableClient::versions`]) |
//! | `POST instances/{id}/rewind?reason=` | take a Failed instance back to before its failed activities and sub-orchestrations and run them again; 202 ([`DurableClient::rewind`]) |
//! | `POST schedules/{id}` | make a schedule: `{"orchestrator", "input", "interval" or "cron" (and "timeZone"), "startAt", "endAt"}`; 201 (200 when the same one exists) ([`schedules`](super::schedules)) |
//! | `GET schedules`, `GET schedules/{id}` | the schedules, with their next and last runs |
//! | `POST schedules/{id}/pause`, `.../resume`, `DELETE schedules/{id}` | pause, resume (from the next occurrence), delete |
//! | `POST entities/{name}/{key}?op={operation}[&scheduledTime=]` | signal an entity (the body is the input); 202 |
//! | `GET entities/{name}/{key}` | the entity's state as the body; 404 when it does not exist |
//! | `GET entities?name=&top=` | existing entities with their state; paging by `x-ms-continuation-token` |
//!
//! Errors: 400 bad id or input, 404 unknown instance or orchestrator, 409 conflicting state, 410 an
//! operation on a finished instance; each with `{"error": {"kind", "message"}}`.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use super::client::DurableClient;
use super::error::DurableError;
use super::hub::TaskHub;
use super::store::{InstanceStatus, ListFilter, RuntimeStatus};
use crate::http::{HttpRequest, HttpResponse};

/// The header that carries the continuation token of `GET instances`.
pub const CONTINUATION_HEADER: &str = "x-ms-continuation-token";

/// Serves one management request; `path` is the part after `orchestrators/`.
pub async fn handle(client: &DurableClient, hub: &TaskHub, req: &HttpRequest, path: &str) -> HttpResponse {
    match route(client, hub, req, path).await {
        Ok(res) => res,
        Err(e) => error_response(&e),
    }
}

/// The answer for a failed request: its status and `{"error": {"kind", "message"}}` (server errors
/// are logged).
pub fn error_response(e: &DurableError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "orchestration management request failed");
    }
    HttpResponse::error(status, crate::error::kind_for_status(status.as_u16()), e)
}

async fn route(
    client: &DurableClient,
    hub: &TaskHub,
    req: &HttpRequest,
    path: &str,
) -> Result<HttpResponse, DurableError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method.as_str();
    let links = Links::new(req);
    match (method, segments.as_slice()) {
        ("GET", ["instances"]) => list(client, req).await,
        ("GET", ["instances", id]) => {
            let show_history = req.query("showHistory").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let view = client.status(id, show_history).await?;
            let mut body = status_json(&view.status);
            if let Some(history) = view.history {
                body["historyEvents"] = history_json(&history);
            }
            let res = if view.status.runtime_status.is_terminal() {
                HttpResponse::ok()
            } else {
                HttpResponse::accepted().header("location", &links.status(id)).header("retry-after", "1")
            };
            Ok(res.json(&body))
        }
        ("DELETE", ["instances"]) => {
            let mut filter = filter_from(req)?;
            if filter.created_from.is_none() {
                return Err(DurableError::BadRequest(
                    "purging many instances needs createdTimeFrom (and optionally createdTimeTo, runtimeStatus)"
                        .to_owned(),
                ));
            }
            if filter.statuses.is_empty() {
                filter.statuses = vec![RuntimeStatus::Completed, RuntimeStatus::Failed, RuntimeStatus::Terminated];
            }
            if let Some(s) = filter.statuses.iter().find(|s| !s.is_terminal()) {
                return Err(DurableError::BadRequest(format!(
                    "runtimeStatus {s:?} is not finished; only Completed, Failed and Terminated instances are purged"
                )));
            }
            let deleted = client.purge_many(&filter).await?;
            Ok(HttpResponse::ok().json(&json!({ "instancesDeleted": deleted })))
        }
        ("POST", ["instances", id, "restart"]) => {
            let new_id = match req.query("restartWithNewInstanceId") {
                None => true,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(v) => {
                    return Err(DurableError::BadRequest(format!(
                        "restartWithNewInstanceId {v:?} is not true or false"
                    )));
                }
            };
            let id = client.restart(id, new_id).await?;
            let body = links.start_body(&id);
            Ok(HttpResponse::accepted().header("location", &links.status(&id)).json(&body))
        }
        ("DELETE", ["instances", id]) => {
            client.purge(id).await?;
            Ok(HttpResponse::ok().json(&json!({ "instancesDeleted": 1 })))
        }
        ("POST", ["instances", id, "raiseEvent", event]) => {
            client.raise_event(id, event, body_json(req)?).await?;
            Ok(HttpResponse::accepted())
        }
        ("POST", ["instances", id, "terminate"]) => {
            client.terminate(id, req.query("reason").unwrap_or("terminated through the management API")).await?;
            Ok(HttpResponse::accepted())
        }
        ("POST", ["instances", id, "rewind"]) => {
            client.rewind(id, req.query("reason").unwrap_or("rewound through the management API")).await?;
            Ok(HttpResponse::accepted())
        }
        ("POST", ["instances", id, "suspend"]) => {
            client.suspend(id).await?;
            Ok(HttpResponse::accepted())
        }
        ("POST", ["instances", id, "resume"]) => {
            client.resume(id).await?;
            Ok(HttpResponse::accepted())
        }
        ("POST", ["entities", name, key]) => {
            let entity = super::entity::EntityId::new(*name, *key);
            let op = req.query("op").unwrap_or_default();
            let at = match req.query("scheduledTime").filter(|t| !t.is_empty()) {
                None => None,
                Some(t) => Some(chrono::DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).map_err(|e| {
                    DurableError::BadRequest(format!("scheduledTime {t:?} is not an RFC 3339 time: {e}"))
                })?),
            };
            // With an Idempotency-Key, a retried signal (its first answer lost) is applied once.
            match req.header("Idempotency-Key") {
                Some(key) => client.signal_entity_once(&entity, op, body_json(req)?, at, key).await?,
                None => client.signal_entity(&entity, op, body_json(req)?, at).await?,
            }
            Ok(HttpResponse::accepted())
        }
        ("GET", ["entities", name, key]) => {
            let entity = super::entity::EntityId::new(*name, *key);
            match client.entity_state(&entity).await? {
                Some(view) => Ok(HttpResponse::ok().json(&view.state)),
                None => Err(DurableError::NotFound(format!("entity {entity} does not exist"))),
            }
        }
        ("GET", ["entities"]) => {
            let top = top_from(req)?;
            let token = req.header(CONTINUATION_HEADER).or(req.query("continuationToken"));
            let name = req.query("name").filter(|n| !n.is_empty());
            let (items, next) = client.list_entities(name, top, token).await?;
            let body: Vec<Value> = items
                .iter()
                .map(|v| {
                    json!({
                        "entityId": {"name": v.entity.name, "key": v.entity.key},
                        "state": v.state,
                        "lastOperationTime": v.last_modified.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    })
                })
                .collect();
            let mut res = HttpResponse::ok().json(&body);
            if let Some(next) = next {
                res = res.header(CONTINUATION_HEADER, &next);
            }
            Ok(res)
        }
        ("GET", ["poison"]) => poison(hub).await,
        ("GET", ["retention"]) => Ok(HttpResponse::ok().json(&super::retention::status())),
        ("GET", ["schedules"]) => {
            Ok(HttpResponse::ok().json(&super::schedules::Schedules::new(client.clone()).list().await?))
        }
        ("GET", ["schedules", id]) => {
            Ok(HttpResponse::ok().json(&super::schedules::Schedules::new(client.clone()).get(id).await?))
        }
        ("POST", ["schedules", id]) => {
            let spec: super::schedules::ScheduleSpec = serde_json::from_value(body_json(req)?).map_err(|e| {
                DurableError::BadRequest(format!(
                    "schedule {id}: the body should be {{\"orchestrator\", \"input\", \"interval\" or \"cron\" (and \"timeZone\"), \"startAt\", \"endAt\"}}: {e}"
                ))
            })?;
            let (state, created) = super::schedules::Schedules::new(client.clone()).create(id, spec).await?;
            let res = if created { HttpResponse::new(StatusCode::CREATED) } else { HttpResponse::ok() };
            Ok(res.json(&state))
        }
        ("POST", ["schedules", id, "pause"]) => {
            Ok(HttpResponse::ok().json(&super::schedules::Schedules::new(client.clone()).pause(id).await?))
        }
        ("POST", ["schedules", id, "resume"]) => {
            Ok(HttpResponse::ok().json(&super::schedules::Schedules::new(client.clone()).resume(id).await?))
        }
        ("DELETE", ["schedules", id]) => {
            super::schedules::Schedules::new(client.clone()).delete(id).await?;
            Ok(HttpResponse::ok().json(&json!({ "deleted": id })))
        }
        ("GET", ["versions"]) => {
            let versions = client.versions().await?;
            let default = client.registry().default_version_setting();
            Ok(HttpResponse::ok().json(&json!({ "defaultVersion": default, "versions": versions })))
        }
        ("POST", ["poison", "redrive"]) => {
            let moved = redrive(hub).await?;
            Ok(HttpResponse::ok().json(&json!({ "redriven": moved })))
        }
        ("POST", [name]) | ("POST", [name, _]) if !["instances", "poison", "entities", "schedules"].contains(name) => {
            // With an Idempotency-Key and no instance id, the id is derived from the key: a retried
            // start is then the same start, answered with the same instance (DurableClient::start).
            let keyed = req.header("Idempotency-Key").map(|key| idempotent_instance_id(name, key));
            let id = match (segments.get(1).copied(), keyed) {
                // An explicit id: a finished instance is started afresh, as in Durable Functions.
                (Some(id), _) => client.start(name, Some(id), body_json(req)?).await?,
                // A keyed start is a retry: it answers with the first run, even a finished one.
                (None, Some(id)) => client.start_once(name, &id, body_json(req)?).await?,
                (None, None) => client.start(name, None, body_json(req)?).await?,
            };
            let body = links.start_body(&id);
            Ok(HttpResponse::accepted().header("location", &links.status(&id)).json(&body))
        }
        _ => Err(DurableError::NotFound(format!(
            "{method} orchestrators/{path} is not an operation of the management API (see azfn::durable::api)"
        ))),
    }
}

/// The request body as JSON; an empty body is `null`.
fn body_json(req: &HttpRequest) -> Result<Value, DurableError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        DurableError::BadRequest(format!("the request body is not JSON: {e} (send JSON, e.g. \"text\" or {{...}})"))
    })
}

async fn list(client: &DurableClient, req: &HttpRequest) -> Result<HttpResponse, DurableError> {
    let filter = filter_from(req)?;
    let top = top_from(req)?;
    let token = req.header(CONTINUATION_HEADER).or(req.query("continuationToken"));
    let (items, next) = client.list(&filter, top, token).await?;
    let body: Vec<Value> = items.iter().map(status_json).collect();
    let mut res = HttpResponse::ok().json(&body);
    if let Some(next) = next {
        res = res.header(CONTINUATION_HEADER, &next);
    }
    Ok(res)
}

/// The page size the query asks for (`top`), if any.
fn top_from(req: &HttpRequest) -> Result<Option<u32>, DurableError> {
    match req.query("top") {
        None => Ok(None),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| DurableError::BadRequest(format!("top {t:?} is not a positive whole number"))),
    }
}

/// The instance filter of the query: `runtimeStatus` (comma-separated), `createdTimeFrom`,
/// `createdTimeTo` (RFC 3339), `namePrefix`.
fn filter_from(req: &HttpRequest) -> Result<ListFilter, DurableError> {
    let mut filter = ListFilter::default();
    if let Some(list) = req.query("runtimeStatus").filter(|s| !s.is_empty()) {
        for s in list.split(',').map(str::trim) {
            let status: RuntimeStatus = serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
                DurableError::BadRequest(format!(
                    "runtimeStatus {s:?} is not one of Pending, Running, Completed, ContinuedAsNew, Failed, Terminated, Suspended"
                ))
            })?;
            filter.statuses.push(status);
        }
    }
    let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, DurableError> {
        match req.query(name).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(t) => chrono::DateTime::parse_from_rfc3339(t).map(|t| Some(t.to_utc())).map_err(|e| {
                DurableError::BadRequest(format!("{name} {t:?} is not an RFC 3339 time (2026-01-31T12:00:00Z): {e}"))
            }),
        }
    };
    filter.created_from = time("createdTimeFrom")?;
    filter.created_to = time("createdTimeTo")?;
    filter.name_prefix = req.query("namePrefix").map(str::to_owned);
    Ok(filter)
}

/// A status as Durable Functions shows it.
/// History events as `showHistory=true` gives them: each with the `timestamp` of the episode that
/// recorded it (Durable Functions gives each event a `Timestamp` too).
fn history_json(history: &[super::history::Event]) -> Value {
    let mut at: Option<chrono::DateTime<chrono::Utc>> = None;
    let events = history.iter().map(|e| {
        if let super::history::Event::OrchestratorStarted { time } = e {
            at = Some(*time);
        }
        let mut v = serde_json::to_value(e).unwrap_or_default();
        if let (Some(t), Some(o)) = (at, v.as_object_mut()) {
            o.insert("timestamp".into(), Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        }
        v
    });
    Value::Array(events.collect())
}

fn status_json(s: &InstanceStatus) -> Value {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut v = json!({
        "name": s.name,
        "instanceId": s.instance_id,
        "runtimeStatus": s.runtime_status,
        "input": s.input,
        "customStatus": s.custom_status,
        "output": s.output,
        "createdTime": time(s.created_time),
        "lastUpdatedTime": time(s.last_updated_time),
    });
    // Not in Durable Functions' payload: present only while a message for the instance fails.
    if let Some(version) = &s.version {
        v["version"] = json!(version);
    }
    if let Some(error) = &s.last_error {
        v["lastError"] = json!(error);
    }
    v
}

/// The management URIs of an instance, built from the URL the caller used (with its `code`).
pub(crate) struct Links {
    base: String,
    code: Option<String>,
}

impl Links {
    fn new(req: &HttpRequest) -> Self {
        let url = req.url.split(['?', '#']).next().unwrap_or_default();
        let base = match url.to_ascii_lowercase().find("/orchestrators") {
            Some(i) => url[..i + "/orchestrators".len()].to_owned(),
            None => url.trim_end_matches('/').to_owned(),
        };
        Self { base, code: req.query("code").map(str::to_owned) }
    }

    /// The links for a request to any HTTP function of the app: the management API is at
    /// `{scheme}://{host}/{route_prefix}/orchestrators`. The caller's `code` is not carried over:
    /// it is a key of the calling function, which the `Orchestrators` function does not take (in
    /// Azure a caller adds a key of `Orchestrators`, or a host key).
    pub(crate) fn for_handler(req: &HttpRequest, route_prefix: &str) -> Self {
        let url = req.url.split(['?', '#']).next().unwrap_or_default();
        let origin = match url.find("://") {
            Some(i) => {
                let rest = &url[i + 3..];
                &url[..i + 3 + rest.find('/').unwrap_or(rest.len())]
            }
            None => "",
        };
        let prefix = route_prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            format!("{origin}/orchestrators")
        } else {
            format!("{origin}/{prefix}/orchestrators")
        };
        Self { base, code: None }
    }

    fn uri(&self, id: &str, tail: &str, query: &[&str]) -> String {
        let mut q: Vec<String> = query.iter().map(|s| s.to_string()).collect();
        if let Some(code) = &self.code {
            q.push(format!("code={}", encode(code)));
        }
        let query = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
        format!("{}/instances/{}{tail}{query}", self.base, encode(id))
    }

    pub(crate) fn status(&self, id: &str) -> String {
        self.uri(id, "", &[])
    }

    pub(crate) fn start_body(&self, id: &str) -> Value {
        json!({
            "id": id,
            "statusQueryGetUri": self.status(id),
            "sendEventPostUri": self.uri(id, "/raiseEvent/{eventName}", &[]),
            "terminatePostUri": self.uri(id, "/terminate", &["reason={text}"]),
            "purgeHistoryDeleteUri": self.status(id),
            "suspendPostUri": self.uri(id, "/suspend", &["reason={text}"]),
            "resumePostUri": self.uri(id, "/resume", &["reason={text}"]),
            "restartPostUri": self.uri(id, "/restart", &["restartWithNewInstanceId={bool}"]),
        })
    }
}

/// An instance id as a path segment (`:` kept, as in sub-orchestration ids).
fn encode(s: &str) -> String {
    crate::encoding::percent_encode(s, b":")
}

/// What waits in the hub's poison queues.
async fn poison(hub: &TaskHub) -> Result<HttpResponse, DurableError> {
    let mut body = serde_json::Map::new();
    for queue in [hub.control_queue(), hub.work_queue()] {
        let poison = format!("{queue}-poison");
        let (count, messages) = match hub.queues().approximate_count(&poison).await {
            Ok(count) => {
                let peeked = hub.queues().peek(&poison, 32).await?;
                let shown: Vec<Value> = peeked
                    .iter()
                    .map(|m| {
                        let text = String::from_utf8_lossy(&m.body).into_owned();
                        json!({ "id": m.id, "insertionTime": m.insertion_time, "body": serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)) })
                    })
                    .collect();
                (count, shown)
            }
            Err(e) if e.is_not_found() => (0, Vec::new()),
            Err(e) => return Err(e.into()),
        };
        body.insert(poison, json!({ "approximateCount": count, "messages": messages }));
    }
    Ok(HttpResponse::ok().json(&Value::Object(body)))
}

/// Moves every message of the hub's poison queues back to the queue it came from.
///
/// A control message goes back marked `recover`: it was delivered, and failed, several times, so
/// its episode may have been committed without its messages sent; marked, it is applied as the
/// redelivery it is and re-sends what its instance lists as unsent (issue 27, defect 10). Sent
/// as it was, it would count as a first delivery, find nothing new and send nothing.
pub async fn redrive(hub: &TaskHub) -> Result<u64, DurableError> {
    let mut moved = 0;
    for queue in [hub.control_queue(), hub.work_queue()] {
        let poison = format!("{queue}-poison");
        loop {
            let batch = match hub.queues().receive(&poison, 32, Duration::from_secs(60)).await {
                Ok(batch) => batch,
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e.into()),
            };
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let body = if queue == hub.control_queue() { marked_recover(&m.body) } else { m.body.clone() };
                hub.queues().send(&queue, &body, Duration::ZERO).await?;
                hub.queues().delete(&poison, &m).await?;
                moved += 1;
            }
        }
    }
    Ok(moved)
}

/// A control message's JSON with `recover` set; anything else as it is.
fn marked_recover(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut msg)) => {
            msg.insert("recover".to_owned(), Value::Bool(true));
            serde_json::to_vec(&Value::Object(msg)).unwrap_or_else(|_| body.to_vec())
        }
        _ => body.to_vec(),
    }
}

/// The instance id a start with `Idempotency-Key: key` gets: the same for the same orchestrator and
/// key, different for any other.
pub fn idempotent_instance_id(orchestrator: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("azfn:{orchestrator}:{key}").as_bytes()).simple().to_string()
}
