//! Binding expressions (`{name}` in a queue name, blob path, table key, ...), resolved as webjobs-sdk
//! resolves them (Azure/azure-webjobs-sdk f79ea0b, `Bindings/Path/BindingTemplateToken.cs`,
//! `BindingParameterResolver.cs`, `BindingDataPathHelper.cs`, `SystemBindingData.cs`):
//!
//! - `{a.b.c}`: `a` from the binding data (case-insensitive), then each `.b` a property of the value
//!   before (a JSON object's, case-insensitive) (`ExpressionToken.Evaluate`);
//! - `{a:format}`: the format applies to a date or a GUID; other values ignore it;
//! - the binding data wins over the built-ins ("BindingData takes precedence over builtins");
//!   otherwise `{rand-guid}` is a new GUID and `{datetime}` the time now (UTC), each with an
//!   optional `:format` (`{rand-guid:N}`, `{datetime:yyyy/MM/dd}`);
//! - `{sys.randguid}`, `{sys.utcnow}`, `{sys.methodname}`: `SystemBindingData` (a new GUID on each
//!   use, the time now, the function's name);
//! - a date without a format is written `yyyy-MM-ddTHH-mm-ssK` (no colons, so it fits a blob name), a
//!   GUID as `D` (`ConvertParameterValueToString`); a JSON object or array has no value here.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use azfn::encoding::unwrap_text;

/// A value an expression reached, typed as the host would see it.
enum Reached {
    Text(String),
    Date(DateTime<Utc>),
    Guid(uuid::Uuid),
}

/// Fills `{...}` expressions in `template` from the binding data (whose values the host encoded).
pub fn resolve_expression(template: &str, binding_data: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `{{` in {template:?}"))?;
        let expression = &after[..end];
        let value = evaluate(expression, binding_data)
            .map_err(|e| format!("the binding expression {{{expression}}} in {template:?}: {e}"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One expression's value (`BindingTemplateToken.NewExpression` and `ExpressionToken.Evaluate`).
fn evaluate(expression: &str, data: &Map<String, Value>) -> Result<String, String> {
    let lower = expression.to_ascii_lowercase();
    let builtin = ["rand-guid", "datetime"].into_iter().find(|b| lower.starts_with(b));
    // A built-in takes its format after its own name; any other expression after its first `:`.
    let (path, format) = match builtin {
        Some(b) => (expression, expression.get(b.len()..).and_then(|r| r.strip_prefix(':'))),
        None => match expression.split_once(':') {
            Some((p, f)) if !p.is_empty() => (p, Some(f)),
            _ => (expression, None),
        },
    };
    let format = format.filter(|f| !f.trim().is_empty());
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("an empty name between dots".to_owned());
    }
    let found = data.iter().find(|(k, _)| k.eq_ignore_ascii_case(parts[0])).map(|(_, v)| v);
    let reached = match found {
        Some(first) if !parts[0].eq_ignore_ascii_case("sys") => {
            let mut current = first.clone();
            for part in &parts[1..] {
                current = property(&current, part).ok_or_else(|| format!("no property `{part}`"))?;
            }
            match current {
                Value::String(s) => Reached::Text(unwrap_text(&s).into_owned()),
                Value::Number(n) => Reached::Text(n.to_string()),
                Value::Bool(b) => Reached::Text(if b { "True" } else { "False" }.to_owned()),
                _ => {
                    return Err(
                        "its value is an object, an array or null, which a binding expression cannot use".into()
                    );
                }
            }
        }
        // `sys` is SystemBindingData: its values are made when read.
        _ if parts[0].eq_ignore_ascii_case("sys") => match parts.get(1).map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("utcnow") => Reached::Date(Utc::now()),
            Some("randguid") => Reached::Guid(uuid::Uuid::new_v4()),
            Some("methodname") => {
                let sys = found.and_then(|v| property(v, "MethodName")).and_then(|v| v.as_str().map(str::to_owned));
                Reached::Text(sys.ok_or("no function name in the binding data")?)
            }
            _ => return Err("`sys` has `randguid`, `utcnow` and `methodname`".into()),
        },
        _ => match builtin {
            Some("rand-guid") => Reached::Guid(uuid::Uuid::new_v4()),
            Some(_) => Reached::Date(Utc::now()),
            None => return Err("no value for this name in the trigger's data".into()),
        },
    };
    Ok(match reached {
        Reached::Text(t) => t,
        Reached::Date(d) => dotnet_date(&d, format.unwrap_or("yyyy-MM-ddTHH-mm-ssK")),
        Reached::Guid(g) => dotnet_guid(&g, format.unwrap_or("D"))?,
    })
}

/// A JSON object's property, by name without regard to case (`JObject.TryGetValue(member,
/// StringComparison.OrdinalIgnoreCase, ...)`); a text holding a JSON object is read as one.
fn property(value: &Value, name: &str) -> Option<Value> {
    let object = match value {
        Value::Object(o) => o.clone(),
        Value::String(s) => serde_json::from_str::<Map<String, Value>>(&unwrap_text(s)).ok()?,
        _ => return None,
    };
    object.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// `Guid.ToString(format)`: `N` (32 digits), `D` (hyphens), `B` (braces), `P` (parentheses).
fn dotnet_guid(g: &uuid::Uuid, format: &str) -> Result<String, String> {
    let d = g.hyphenated().to_string();
    Ok(match format {
        "N" | "n" => g.simple().to_string(),
        "D" | "d" => d,
        "B" | "b" => format!("{{{d}}}"),
        "P" | "p" => format!("({d})"),
        other => return Err(format!("{other:?} is not a GUID format the built-in host knows (N, D, B, P)")),
    })
}

/// `DateTime.ToString(format, CultureInfo.InvariantCulture)` for a UTC time, for the custom format
/// specifiers a path uses: `yyyy yy MM M dd d HH H hh h mm m ss s f...(1-7) tt K`, quoted literals
/// and `\` escapes; anything else is copied.
fn dotnet_date(d: &DateTime<Utc>, format: &str) -> String {
    use chrono::{Datelike, Timelike};
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let mut used = run;
        match c {
            'y' => out.push_str(&if run >= 4 { format!("{:04}", d.year()) } else { format!("{:02}", d.year() % 100) }),
            'M' => out.push_str(&if run >= 2 { format!("{:02}", d.month()) } else { d.month().to_string() }),
            'd' => out.push_str(&if run >= 2 { format!("{:02}", d.day()) } else { d.day().to_string() }),
            'H' => out.push_str(&if run >= 2 { format!("{:02}", d.hour()) } else { d.hour().to_string() }),
            'h' => {
                let h = (d.hour() + 11) % 12 + 1;
                out.push_str(&if run >= 2 { format!("{h:02}") } else { h.to_string() })
            }
            'm' => out.push_str(&if run >= 2 { format!("{:02}", d.minute()) } else { d.minute().to_string() }),
            's' => out.push_str(&if run >= 2 { format!("{:02}", d.second()) } else { d.second().to_string() }),
            'f' => {
                used = run.min(7);
                let digits = format!("{:07}", d.nanosecond() / 100);
                out.push_str(&digits[..used]);
            }
            't' => out.push_str(if d.hour() < 12 { "AM" } else { "PM" }),
            // A UTC DateTime's offset (`K`): "Z".
            'K' => {
                used = 1;
                out.push('Z');
            }
            '\'' | '"' => {
                let close = chars[i + 1..].iter().position(|&x| x == c).map_or(chars.len(), |p| i + 1 + p);
                out.extend(&chars[i + 1..close]);
                used = close + 1 - i;
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                }
                used = 2;
            }
            other => {
                used = 1;
                out.push(other);
            }
        }
        i += used;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Map<String, Value> {
        json!({
            "OrderId": "\"o-1\"",
            "order": {"Id": "o-2", "customer": {"name": "Ada"}, "lines": [1]},
            "count": 3,
            "datetime": "\"from-data\"",
            "sys": {"MethodName": "ShipNotice", "UtcNow": "2026-01-01T00:00:00Z", "RandGuid": "x"}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// The rules of the module's doc; `BindingDataPathHelper.ConvertParameterValueToString` line 54:
    /// `format = format ?? "yyyy-MM-ddTHH-mm-ssK"; // default to ISO 8601`.
    #[test]
    fn expressions_resolve_as_webjobs_sdk_resolves_them() {
        let d = data();
        let r = |t: &str| resolve_expression(t, &d);
        assert_eq!(r("orders/{orderid}.json").unwrap(), "orders/o-1.json");
        assert_eq!(r("{order.id}/{Order.Customer.Name}").unwrap(), "o-2/Ada");
        assert_eq!(r("n{count}").unwrap(), "n3");
        // The binding data wins over the built-in of the same name.
        assert_eq!(r("{datetime}").unwrap(), "from-data");
        assert_eq!(r("{sys.methodname}").unwrap(), "ShipNotice");
        let guid = r("{rand-guid}").unwrap();
        assert!(uuid::Uuid::parse_str(&guid).is_ok() && guid.len() == 36, "{guid}");
        assert_eq!(r("{rand-guid:N}").unwrap().len(), 32);
        assert_eq!(r("{sys.randguid}").unwrap().len(), 36);
        assert!(r("{order.lines}").unwrap_err().contains("object, an array"));
        assert!(r("{missing}").unwrap_err().contains("no value"));
        assert!(r("{order.nope}").unwrap_err().contains("no property `nope`"));
        let now = r("{sys.utcnow}").unwrap();
        assert!(now.len() == 20 && now.ends_with('Z') && !now.contains(':'), "{now}");
    }

    #[test]
    fn dates_and_guids_take_dotnet_formats() {
        let t: DateTime<Utc> = "2026-03-04T05:06:07.1234567Z".parse().unwrap();
        assert_eq!(dotnet_date(&t, "yyyy-MM-ddTHH-mm-ssK"), "2026-03-04T05-06-07Z");
        assert_eq!(dotnet_date(&t, "yyyy/MM/dd"), "2026/03/04");
        assert_eq!(dotnet_date(&t, "yy-M-d H:m:s.fff"), "26-3-4 5:6:7.123");
        assert_eq!(dotnet_date(&t, "'day' dd \\y hh tt"), "day 04 y 05 AM");
        let g = uuid::Uuid::parse_str("0d6b1f4e-3c1a-4b7e-9d2f-5a8e7c6b4d3a").unwrap();
        assert_eq!(dotnet_guid(&g, "N").unwrap(), "0d6b1f4e3c1a4b7e9d2f5a8e7c6b4d3a");
        assert_eq!(dotnet_guid(&g, "B").unwrap(), "{0d6b1f4e-3c1a-4b7e-9d2f-5a8e7c6b4d3a}");
    }
}
