//! HTTP routing as the Functions host does it: `/{routePrefix}/{route}` templates with ASP.NET Core
//! parameters (`{id}`, `{id:int}`, optional `{id?}`, defaults `{id=5}`, catch-all `{*rest}`),
//! matched case-insensitively. The rules, from azure-functions-host (89dc438):
//!
//! - the routes are tried in the order of the functions' names (`FunctionMetadataManager` line 192,
//!   `OrderBy(f => f.Name, StringComparer.OrdinalIgnoreCase)`), each added to one `RouteCollection`
//!   (`WebScriptHostHttpRoutesManager`, `WebJobsRouteBuilder.Build`): the first that matches wins,
//!   a literal segment has no priority over a parameter;
//! - a function's methods are a route constraint (`HttpMethodRouteConstraint`): a request with
//!   another method does not match, and if no other route does, the answer is 404, not 405;
//! - `ScriptHost.ValidateHttpFunction`: a route starting with `admin` or `runtime` puts the
//!   function in error ("The specified route conflicts with one or more built in routes."), and
//!   `HttpRoutesConflict`: a route equal to an earlier function's (ignoring case and outer `/`),
//!   with methods in common (none listed means all), puts the later one in error ("The route
//!   specified conflicts with the route defined by function '...'."); a function in error is not
//!   routed;
//! - ASP.NET Core's constraints (`int`, `long`, `bool`, `datetime`, `decimal`, `double`, `float`,
//!   `guid`, `alpha`, `length`, `minlength`, `maxlength`, `min`, `max`, `range`, `regex`, `required`)
//!   are checked, and an unknown one puts the function in error;
//! - a route value is the path segment percent-decoded, except `%2F`, which stays as it is (ASP.NET
//!   Core does not decode an escaped `/` in the path).

use azfn::encoding::percent_decode;
use std::collections::BTreeMap;

use azfn::function_json::FunctionSpec;

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param { name: String, constraints: Vec<Constraint>, optional: bool, default: Option<String> },
    CatchAll(String),
}

/// One ASP.NET Core route constraint.
#[derive(Debug, Clone)]
enum Constraint {
    /// A named check with its argument text (`min(3)` is `("min", "3")`).
    Named(String, String),
    /// `regex(...)`, matched anywhere in the value, without regard to case (`RegexRouteConstraint`).
    Regex(regex::Regex),
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
    /// Nothing matches (404).
    NotFound,
}

/// The HTTP routes of an app.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// The functions in error because of their route, each with the host's reason.
    pub errors: Vec<(String, String)>,
}

/// Splits `text` on `sep` outside parentheses.
fn split_outside_parens(text: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            out.push(String::new());
        } else {
            out.last_mut().expect("one part").push(c);
        }
    }
    out
}

fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let (name, arg) = match text.split_once('(') {
        Some((n, rest)) => (n.to_ascii_lowercase(), rest.strip_suffix(')').unwrap_or(rest).to_owned()),
        None => (text.to_ascii_lowercase(), String::new()),
    };
    match name.as_str() {
        "regex" => regex::RegexBuilder::new(&arg)
            .case_insensitive(true)
            .build()
            .map(Constraint::Regex)
            .map_err(|e| format!("the route constraint regex({arg}) is not a valid expression: {e}")),
        "int" | "long" | "bool" | "datetime" | "decimal" | "double" | "float" | "guid" | "alpha" | "length"
        | "minlength" | "maxlength" | "min" | "max" | "range" | "required" => Ok(Constraint::Named(name, arg)),
        _ => Err(format!("The constraint reference '{name}' could not be resolved")),
    }
}

fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    // `{{` and `}}` are literal braces in a template (a regex's quantifier, say).
    let escaped = template.replace("{{", "\u{1}").replace("}}", "\u{2}");
    let unescape = |s: &str| s.replace('\u{1}', "{").replace('\u{2}', "}");
    let parts: Vec<&str> = escaped.split('/').filter(|s| !s.is_empty()).collect();
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let inner = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')).filter(|i| !i.contains(['{', '}']));
        let Some(inner) = inner else {
            if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "route segment {:?} mixes text and parameters, which azfn's host does not route",
                    unescape(part)
                ));
            }
            segments.push(Segment::Literal(unescape(part).to_ascii_lowercase()));
            continue;
        };
        if let Some(name) = inner.strip_prefix('*') {
            if i + 1 != parts.len() {
                return Err(format!("the catch-all {:?} must be the last segment", unescape(part)));
            }
            segments
                .push(Segment::CatchAll(name.trim_start_matches('*').split(':').next().unwrap_or_default().to_owned()));
            continue;
        }
        // `name:constraint:constraint=default`, `?` marking an optional one.
        let mut halves = split_outside_parens(inner, '=').into_iter();
        let head = halves.next().unwrap_or_default();
        let default = halves.next().map(|d| unescape(&d));
        let optional = head.ends_with('?');
        let mut pieces = split_outside_parens(head.trim_end_matches('?'), ':').into_iter();
        let name = pieces.next().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("route segment {:?} has no parameter name", unescape(part)));
        }
        let constraints = pieces.map(|c| parse_constraint(&unescape(&c))).collect::<Result<Vec<_>, _>>()?;
        segments.push(Segment::Param { name, constraints, optional, default });
    }
    Ok(segments)
}

/// Whether `value` satisfies an ASP.NET Core route constraint.
fn satisfies(value: &str, constraint: &Constraint) -> bool {
    let (name, arg) = match constraint {
        Constraint::Regex(r) => return r.is_match(value),
        Constraint::Named(n, a) => (n.as_str(), a.as_str()),
    };
    let num = |s: &str| s.trim().parse::<i64>().ok();
    let pair = || arg.split_once(',').and_then(|(a, b)| num(a).zip(num(b)));
    let len = value.chars().count() as i64;
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
        "required" => !value.is_empty(),
        "length" => match pair() {
            Some((lo, hi)) => (lo..=hi).contains(&len),
            None => num(arg).is_some_and(|n| len == n),
        },
        "minlength" => num(arg).is_some_and(|n| len >= n),
        "maxlength" => num(arg).is_some_and(|n| len <= n),
        "min" => num(arg).zip(num(value)).is_some_and(|(n, v)| v >= n),
        "max" => num(arg).zip(num(value)).is_some_and(|(n, v)| v <= n),
        "range" => pair().zip(num(value)).is_some_and(|((lo, hi), v)| (lo..=hi).contains(&v)),
        _ => false,
    }
}

/// A path segment as a route value: percent-decoded, except an escaped `/` (`%2F`), kept as sent.
fn route_value(segment: &str) -> String {
    let lower = segment.to_ascii_lowercase();
    let mut out = String::new();
    let mut rest = 0;
    let mut from = 0;
    while let Some(at) = lower[from..].find("%2f").map(|i| i + from) {
        out.push_str(&percent_decode(&segment[rest..at]));
        out.push_str(&segment[at..at + 3]);
        rest = at + 3;
        from = rest;
    }
    out.push_str(&percent_decode(&segment[rest..]));
    out
}

impl RouteTable {
    /// The routes of the HTTP-triggered functions under `route_prefix` (host.json
    /// `extensions.http.routePrefix`; a function without `route` is served at its name). A template
    /// azfn cannot route is an error; a function the host would put in error is left out and
    /// listed in [`errors`](Self::errors).
    pub fn new<'a>(route_prefix: &str, functions: impl IntoIterator<Item = &'a FunctionSpec>) -> Result<Self, String> {
        let mut specs: Vec<&FunctionSpec> =
            functions.into_iter().filter(|spec| spec.trigger().is_type("httpTrigger")).collect();
        specs.sort_by_key(|spec| spec.name.to_lowercase());
        let mut table = Self::default();
        // (function, route as written, methods) of those routed so far, for the conflict check.
        let mut seen: Vec<(String, String, Option<Vec<String>>)> = Vec::new();
        for spec in specs {
            let trigger = spec.trigger();
            let route = trigger.property("route").filter(|r| !r.trim().is_empty()).unwrap_or(&spec.name);
            let methods = trigger
                .properties
                .get("methods")
                .and_then(|m| m.as_array())
                .map(|m| m.iter().filter_map(|v| v.as_str()).map(str::to_ascii_uppercase).collect::<Vec<_>>())
                .filter(|m| !m.is_empty());
            let lower = route.trim_matches('/').to_ascii_lowercase();
            if lower.starts_with("admin") || lower.starts_with("runtime") {
                table.errors.push((
                    spec.name.clone(),
                    "The specified route conflicts with one or more built in routes.".into(),
                ));
                continue;
            }
            let conflict = seen.iter().find(|(_, other, other_methods)| {
                other.trim_matches('/').eq_ignore_ascii_case(route.trim_matches('/'))
                    && match (&methods, other_methods) {
                        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                        _ => true,
                    }
            });
            if let Some((other, _, _)) = conflict {
                table.errors.push((
                    spec.name.clone(),
                    format!("The route specified conflicts with the route defined by function '{other}'."),
                ));
                continue;
            }
            let template = format!("{}/{}", route_prefix.trim_matches('/'), route.trim_matches('/'));
            let segments = match parse_template(&template) {
                Ok(s) => s,
                Err(e) if e.starts_with("The constraint reference") => {
                    table.errors.push((spec.name.clone(), e));
                    continue;
                }
                Err(e) => return Err(format!("function `{}`: {e}", spec.name)),
            };
            seen.push((spec.name.clone(), route.to_owned(), methods.clone()));
            table.routes.push(Route { function: spec.name.clone(), template, segments, methods });
        }
        Ok(table)
    }

    /// Routes `method path` (path without the query string): the first route, in function-name
    /// order, whose template and methods match.
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for route in &self.routes {
            let allowed = route.methods.as_ref().is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)));
            if !allowed {
                continue;
            }
            if let Some(params) = Self::match_segments(&route.segments, &parts) {
                return RouteMatch::Found { function: route.function.clone(), params };
            }
        }
        RouteMatch::NotFound
    }

    fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<BTreeMap<String, Option<String>>> {
        let mut params = BTreeMap::new();
        let mut i = 0;
        for seg in segments {
            match seg {
                Segment::Literal(l) => {
                    if !parts.get(i).is_some_and(|p| percent_decode(p).eq_ignore_ascii_case(l)) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Param { name, constraints, optional, default } => match parts.get(i) {
                    Some(p) => {
                        let value = route_value(p);
                        if !constraints.iter().all(|c| satisfies(&value, c)) {
                            return None;
                        }
                        params.insert(name.clone(), Some(value));
                        i += 1;
                    }
                    None if default.is_some() => {
                        params.insert(name.clone(), default.clone());
                    }
                    None if *optional => {
                        params.insert(name.clone(), None);
                    }
                    None => return None,
                },
                Segment::CatchAll(name) => {
                    params.insert(
                        name.clone(),
                        Some(parts[i.min(parts.len())..].iter().map(|p| route_value(p)).collect::<Vec<_>>().join("/")),
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
        assert_eq!(t.route("POST", "/api/hello"), RouteMatch::NotFound, "a method is a route constraint: 404");
        assert_eq!(t.route("GET", "/api/orders/o%2D1"), found("GetOrder", &[("id", "o-1")]));
        // Function-name order, first match: GetOrder comes before Latest and takes the request.
        assert_eq!(t.route("GET", "/api/orders/latest"), found("GetOrder", &[("id", "latest")]));
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
        let ok = |v: &str, c: &str| satisfies(v, &parse_constraint(c).unwrap());
        assert!(ok("12", "int") && !ok("1.5", "int"));
        assert!(ok("d4c3b2a1-0000-4000-8000-000000000000", "guid") && !ok("x", "guid"));
        assert!(ok("abc", "alpha") && !ok("ab1", "alpha"));
        assert!(ok("abc", "minlength(2)") && !ok("abc", "maxlength(2)"));
        assert!(ok("5", "min(1)") && !ok("5", "max(4)"));
        assert!(ok("TRUE", "bool"));
        assert!(ok("abc", "length(3)") && ok("abc", "length(2,4)") && !ok("abcde", "length(2,4)"));
        assert!(ok("7", "range(1,10)") && !ok("11", "range(1,10)"));
        assert!(ok("ABC123", "regex(^[a-z]+\\d+$)") && !ok("123", "regex(^[a-z]+$)"));
        assert!(!ok("", "required"));
        assert!(parse_constraint("nope").unwrap_err().contains("could not be resolved"));
    }

    /// The rules of the module's doc: function-name order, 404 for another method, defaults,
    /// `%2F` kept, and functions in error for reserved or conflicting routes.
    #[test]
    fn routes_follow_the_hosts_order_and_validation() {
        let specs = [
            spec("b-Latest", json!({"route": "orders/latest", "methods": ["get"]})),
            spec("A-ById", json!({"route": "orders/{id}", "methods": ["get"]})),
            spec("Page", json!({"route": "pages/{n:int=1}"})),
            spec("Admin", json!({"route": "administer/x"})),
            spec("Runtime", json!({"route": "/runtime/y"})),
            spec("Dup", json!({"route": "ORDERS/{id}/", "methods": ["get", "post"]})),
            spec("DupPut", json!({"route": "orders/{id}", "methods": ["put"]})),
            spec("Bad", json!({"route": "z/{id:nope}"})),
        ];
        let t = RouteTable::new("api", specs.iter()).unwrap();
        assert_eq!(
            t.route("GET", "/api/orders/latest"),
            found("A-ById", &[("id", "latest")]),
            "names in order, ignoring case"
        );
        assert_eq!(
            t.route("PUT", "/api/orders/7"),
            found("DupPut", &[("id", "7")]),
            "no method in common: no conflict"
        );
        assert_eq!(t.route("GET", "/api/pages"), found("Page", &[("n", "1")]), "a default fills a missing value");
        assert_eq!(t.route("GET", "/api/orders/a%2Fb"), found("A-ById", &[("id", "a%2Fb")]), "%2F stays escaped");
        let errors: BTreeMap<_, _> = t.errors.iter().cloned().collect();
        assert_eq!(errors["Admin"], "The specified route conflicts with one or more built in routes.");
        assert_eq!(errors["Runtime"], "The specified route conflicts with one or more built in routes.");
        assert_eq!(errors["Dup"], "The route specified conflicts with the route defined by function 'A-ById'.");
        assert!(errors["Bad"].contains("could not be resolved"));
        assert!(!errors.contains_key("DupPut") && !errors.contains_key("b-Latest"));
        assert_eq!(t.route("GET", "/api/z/1"), RouteMatch::NotFound, "a function in error is not routed");
    }

    #[test]
    fn unsupported_templates_are_refused() {
        let bad = [spec("F", json!({"route": "f/{name}.{ext}"}))];
        assert!(RouteTable::new("api", bad.iter()).unwrap_err().contains("mixes text"));
        let bad = [spec("F", json!({"route": "{*all}/x"}))];
        assert!(RouteTable::new("", bad.iter()).unwrap_err().contains("last segment"));
    }
}
