//! HTTP routing as the Functions host does it: `/{routePrefix}/{route}` templates with
//! ASP.NET Core parameters (`{id}`, `{id:int}`, optional `{id?}`, catch-all `{*rest}`), matched
//! case-insensitively, and the methods each function allows.

use azfn::encoding::percent_decode;
use std::collections::BTreeMap;

use azfn::function_json::FunctionSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param { name: String, constraints: Vec<String>, optional: bool },
    CatchAll(String),
}

#[derive(Debug, Clone)]
struct Route {
    function: String,
    template: String,
    segments: Vec<Segment>,
    methods: Option<Vec<String>>,
}

/// The result of routing a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// A function's route and method match.
    Found {
        /// The function.
        function: String,
        /// The route parameters; an optional one left unmatched is `None` (sent as `null`).
        params: BTreeMap<String, Option<String>>,
    },
    /// A route matches but not for this method (405).
    MethodNotAllowed,
    /// Nothing matches (404).
    NotFound,
}

/// The HTTP routes of an app.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let inner = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')).filter(|i| !i.contains(['{', '}']));
        let Some(inner) = inner else {
            if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "route segment {part:?} mixes text and parameters, which azfn's host does not route"
                ));
            }
            segments.push(Segment::Literal(part.to_ascii_lowercase()));
            continue;
        };
        if let Some(name) = inner.strip_prefix('*') {
            if i + 1 != parts.len() {
                return Err(format!("the catch-all {part:?} must be the last segment"));
            }
            segments
                .push(Segment::CatchAll(name.trim_start_matches('*').split(':').next().unwrap_or_default().to_owned()));
            continue;
        }
        let optional = inner.ends_with('?');
        let inner = inner.trim_end_matches('?');
        let mut pieces = inner.split(':');
        let name = pieces.next().unwrap_or_default().split('=').next().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(format!("route segment {part:?} has no parameter name"));
        }
        segments.push(Segment::Param { name, constraints: pieces.map(str::to_ascii_lowercase).collect(), optional });
    }
    Ok(segments)
}

/// Whether `value` satisfies an ASP.NET Core route constraint (the common ones; others pass).
fn satisfies(value: &str, constraint: &str) -> bool {
    let (name, arg) = match constraint.split_once('(') {
        Some((n, rest)) => (n, rest.trim_end_matches(')')),
        None => (constraint, ""),
    };
    let num = |s: &str| s.parse::<i64>().ok();
    match name {
        "int" => value.parse::<i32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "double" | "float" | "decimal" => value.parse::<f64>().is_ok(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        "datetime" => {
            chrono::DateTime::parse_from_rfc3339(value).is_ok()
                || chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        }
        "minlength" => num(arg).is_some_and(|n| value.chars().count() as i64 >= n),
        "maxlength" => num(arg).is_some_and(|n| value.chars().count() as i64 <= n),
        "min" => num(arg).zip(num(value)).is_some_and(|(n, v)| v >= n),
        "max" => num(arg).zip(num(value)).is_some_and(|(n, v)| v <= n),
        _ => true,
    }
}

impl RouteTable {
    /// The routes of the HTTP-triggered functions under `route_prefix` (host.json
    /// `extensions.http.routePrefix`; a function without `route` is served at its name).
    pub fn new<'a>(route_prefix: &str, functions: impl IntoIterator<Item = &'a FunctionSpec>) -> Result<Self, String> {
        let mut routes = Vec::new();
        for spec in functions {
            let trigger = spec.trigger();
            if !trigger.is_type("httpTrigger") {
                continue;
            }
            let route = trigger.property("route").unwrap_or(&spec.name);
            let template = format!("{}/{}", route_prefix.trim_matches('/'), route.trim_matches('/'));
            let segments = parse_template(&template).map_err(|e| format!("function `{}`: {e}", spec.name))?;
            let methods = trigger
                .properties
                .get("methods")
                .and_then(|m| m.as_array())
                .map(|m| m.iter().filter_map(|v| v.as_str()).map(str::to_ascii_uppercase).collect::<Vec<_>>());
            routes.push(Route { function: spec.name.clone(), template, segments, methods });
        }
        // Literal segments win over parameters, as in ASP.NET Core's route ordering.
        routes
            .sort_by_key(|r| std::cmp::Reverse(r.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()));
        Ok(Self { routes })
    }

    /// Routes `method path` (path without the query string).
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut method_mismatch = false;
        for route in &self.routes {
            let Some(params) = Self::match_segments(&route.segments, &parts) else { continue };
            let allowed = route.methods.as_ref().is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)));
            if allowed {
                return RouteMatch::Found { function: route.function.clone(), params };
            }
            method_mismatch = true;
        }
        if method_mismatch { RouteMatch::MethodNotAllowed } else { RouteMatch::NotFound }
    }

    fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<BTreeMap<String, Option<String>>> {
        let mut params = BTreeMap::new();
        let mut i = 0;
        for seg in segments {
            match seg {
                Segment::Literal(l) => {
                    if !parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(l)) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Param { name, constraints, optional } => match parts.get(i) {
                    Some(p) => {
                        let value = percent_decode(p);
                        if !constraints.iter().all(|c| satisfies(&value, c)) {
                            return None;
                        }
                        params.insert(name.clone(), Some(value));
                        i += 1;
                    }
                    None if *optional => {
                        params.insert(name.clone(), None);
                    }
                    None => return None,
                },
                Segment::CatchAll(name) => {
                    params.insert(
                        name.clone(),
                        Some(
                            parts[i.min(parts.len())..].iter().map(|p| percent_decode(p)).collect::<Vec<_>>().join("/"),
                        ),
                    );
                    i = parts.len();
                }
            }
        }
        (i == parts.len()).then_some(params)
    }

    /// The route templates, for the console: `(function, template, methods)`.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .routes
            .iter()
            .map(|r| {
                (r.function.clone(), r.template.clone(), r.methods.as_ref().map_or("ANY".to_owned(), |m| m.join(",")))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, trigger: serde_json::Value) -> FunctionSpec {
        let mut t = trigger;
        t["type"] = json!("httpTrigger");
        t["direction"] = json!("in");
        t["name"] = json!("req");
        FunctionSpec::parse(
            name,
            "f.json".as_ref(),
            &json!({"bindings": [t, {"type": "http", "direction": "out", "name": "res"}]}).to_string(),
        )
        .unwrap()
    }

    fn table() -> RouteTable {
        let specs = [
            spec("Hello", json!({"route": "hello", "methods": ["get"]})),
            spec("GetOrder", json!({"route": "orders/{id}", "methods": ["get"]})),
            spec("CreateOrder", json!({"route": "orders", "methods": ["post"]})),
            spec("Latest", json!({"route": "orders/latest", "methods": ["get"]})),
            spec("Item", json!({"route": "items/{id:int?}"})),
            spec("Files", json!({"route": "files/{*path}"})),
            spec("NoRoute", json!({})),
        ];
        RouteTable::new("api", specs.iter()).unwrap()
    }

    fn found(function: &str, params: &[(&str, &str)]) -> RouteMatch {
        RouteMatch::Found {
            function: function.into(),
            params: params.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect(),
        }
    }

    #[test]
    fn routes_methods_and_parameters() {
        let t = table();
        assert_eq!(t.route("GET", "/api/hello"), found("Hello", &[]));
        assert_eq!(t.route("get", "/API/Hello/"), found("Hello", &[]), "case-insensitive, trailing slash");
        assert_eq!(t.route("POST", "/api/hello"), RouteMatch::MethodNotAllowed);
        assert_eq!(t.route("GET", "/api/orders/o%2D1"), found("GetOrder", &[("id", "o-1")]));
        assert_eq!(t.route("GET", "/api/orders/latest"), found("Latest", &[]), "literals win over parameters");
        assert_eq!(t.route("POST", "/api/orders"), found("CreateOrder", &[]));
        assert_eq!(t.route("GET", "/api/items/7"), found("Item", &[("id", "7")]));
        // An optional parameter the path leaves out is there, as null.
        assert_eq!(
            t.route("DELETE", "/api/items"),
            RouteMatch::Found { function: "Item".into(), params: [("id".to_owned(), None)].into_iter().collect() }
        );
        assert_eq!(t.route("GET", "/api/items/seven"), RouteMatch::NotFound, "{{id:int}} refuses text");
        assert_eq!(t.route("GET", "/api/files/a/b.txt"), found("Files", &[("path", "a/b.txt")]));
        assert_eq!(t.route("GET", "/api/NoRoute"), found("NoRoute", &[]));
        assert_eq!(t.route("GET", "/api/nothing"), RouteMatch::NotFound);
        assert_eq!(t.route("GET", "/hello"), RouteMatch::NotFound, "the prefix is required");
        assert_eq!(
            t.route("GET", "/api/orders/%aé%"),
            found("GetOrder", &[("id", "%aé%")]),
            "bad escapes stay as they are"
        );
        assert_eq!(t.route("GET", "/api/orders/caf%C3%A9"), found("GetOrder", &[("id", "café")]));
    }

    #[test]
    fn constraints() {
        assert!(satisfies("12", "int") && !satisfies("1.5", "int"));
        assert!(satisfies("d4c3b2a1-0000-4000-8000-000000000000", "guid") && !satisfies("x", "guid"));
        assert!(satisfies("abc", "alpha") && !satisfies("ab1", "alpha"));
        assert!(satisfies("abc", "minlength(2)") && !satisfies("abc", "maxlength(2)"));
        assert!(satisfies("5", "min(1)") && !satisfies("5", "max(4)"));
        assert!(satisfies("TRUE", "bool"));
    }

    #[test]
    fn unsupported_templates_are_refused() {
        let bad = [spec("F", json!({"route": "f/{name}.{ext}"}))];
        assert!(RouteTable::new("api", bad.iter()).unwrap_err().contains("mixes text"));
        let bad = [spec("F", json!({"route": "{*all}/x"}))];
        assert!(RouteTable::new("", bad.iter()).unwrap_err().contains("last segment"));
    }
}
