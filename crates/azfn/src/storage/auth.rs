//! Authorizing storage requests: Shared Key signatures and SAS tokens (Entra ID tokens: `token.rs`).
//!
//! Shared Key is what Azurite and connection strings with `AccountKey` use. The string to sign is
//! specified in "Authorize with Shared Key" (learn.microsoft.com, Storage REST API): for the Blob and
//! Queue services it covers the verb, standard headers, the `x-ms-*` headers and the resource with
//! its query parameters; for the Table service the verb, Content-MD5, Content-Type, date and resource
//! (with `comp` only).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Request;
use sha2::Sha256;

use super::connection::Credential;
use crate::encoding::BASE64;

/// Which service a request goes to; the Table service signs differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Blob,
    Queue,
    Table,
}

/// The REST API version azfn speaks (supported by Azure and Azurite 3.35).
pub(crate) const API_VERSION: &str = "2024-11-04";

/// Adds `x-ms-date`, `x-ms-version` and the authorization to `req`.
pub(crate) fn authorize(req: &mut Request, service: Service, credential: &Credential) -> Result<(), String> {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let headers = req.headers_mut();
    headers.insert("x-ms-date", date.parse().expect("an HTTP date is a valid header"));
    headers.insert("x-ms-version", API_VERSION.parse().expect("static"));
    match credential {
        Credential::SharedKey { account, key } => {
            let to_sign = string_to_sign(req, service, account);
            let key = BASE64.decode(key).map_err(|e| format!("the account key is not base64: {e}"))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
            mac.update(to_sign.as_bytes());
            let signature = BASE64.encode(mac.finalize().into_bytes());
            let value = format!("SharedKey {account}:{signature}");
            req.headers_mut().insert("authorization", value.parse().map_err(|_| "invalid account name".to_owned())?);
            Ok(())
        }
        Credential::Sas(sas) => {
            let url = req.url_mut();
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{sas}"),
                _ => sas.clone(),
            };
            url.set_query(Some(&query));
            Ok(())
        }
        // The bearer token is added by the client (`ServiceClient::send`), which holds the token cache.
        Credential::ManagedIdentity { .. } | Credential::Default { .. } | Credential::App { .. } => Ok(()),
    }
}

fn string_to_sign(req: &Request, service: Service, account: &str) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let path = req.url().path();
    let mut resource = format!("/{account}{path}");
    let mut query: Vec<(String, String)> =
        req.url().query_pairs().map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect();
    query.sort();
    match service {
        Service::Table => {
            if let Some((_, comp)) = query.iter().find(|(k, _)| k == "comp") {
                resource.push_str("?comp=");
                resource.push_str(comp);
            }
            format!(
                "{}\n{}\n{}\n{}\n{}",
                req.method(),
                header("content-md5"),
                header("content-type"),
                header("x-ms-date"),
                resource
            )
        }
        Service::Blob | Service::Queue => {
            let length = req.body().and_then(|b| b.as_bytes()).map_or(0, <[u8]>::len);
            let length = if length == 0 { String::new() } else { length.to_string() };
            let mut ms: Vec<(String, String)> = req
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").trim().to_owned()))
                .collect();
            ms.sort();
            let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
            let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
            for (k, v) in query {
                match grouped.last_mut() {
                    Some((last, values)) if *last == k => values.push(v),
                    _ => grouped.push((k, vec![v])),
                }
            }
            for (k, values) in grouped {
                resource.push_str(&format!("\n{k}:{}", values.join(",")));
            }
            format!(
                "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n{}{}",
                req.method(),
                header("content-encoding"),
                header("content-language"),
                length,
                header("content-md5"),
                header("content-type"),
                header("if-modified-since"),
                header("if-match"),
                header("if-none-match"),
                header("if-unmodified-since"),
                header("range"),
                canonical_headers,
                resource
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_string_to_sign_has_the_documented_shape() {
        let mut req = Request::new(
            reqwest::Method::GET,
            "http://127.0.0.1:10001/devstoreaccount1/orders/messages?numofmessages=2&visibilitytimeout=30"
                .parse()
                .unwrap(),
        );
        req.headers_mut().insert("x-ms-date", "Sun, 22 Nov 2026 10:00:00 GMT".parse().unwrap());
        req.headers_mut().insert("x-ms-version", API_VERSION.parse().unwrap());
        let s = string_to_sign(&req, Service::Queue, "devstoreaccount1");
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 22 Nov 2026 10:00:00 GMT\nx-ms-version:2024-11-04\n\
             /devstoreaccount1/devstoreaccount1/orders/messages\nnumofmessages:2\nvisibilitytimeout:30"
        );
    }

    #[test]
    fn table_string_to_sign_keeps_only_comp() {
        let mut req = Request::new(
            reqwest::Method::GET,
            "https://a.table.core.windows.net/Tables?comp=list&$top=5".parse().unwrap(),
        );
        req.headers_mut().insert("x-ms-date", "Sun, 22 Nov 2026 10:00:00 GMT".parse().unwrap());
        req.headers_mut().insert("content-type", "application/json".parse().unwrap());
        assert_eq!(
            string_to_sign(&req, Service::Table, "a"),
            "GET\n\napplication/json\nSun, 22 Nov 2026 10:00:00 GMT\n/a/Tables?comp=list"
        );
    }
}
