//! `Hello`: `GET /api/hello?name=Ada` answers `Hello, Ada`.

use azfn::{Context, HttpRequest, HttpResponse};

/// Greets the caller by the `name` query parameter (`world` without one).
pub async fn hello(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
    let name = req.query("name").filter(|n| !n.is_empty()).unwrap_or("world");
    Ok(HttpResponse::ok().text(format!("Hello, {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::*;

    #[tokio::test]
    async fn greets_by_name() {
        let res = hello(http_request("GET", "http://localhost:7071/api/hello?name=Ada", None), context("Hello"))
            .await
            .unwrap();
        assert_eq!(res.body, "Hello, Ada");
        let res = hello(http_request("GET", "http://localhost:7071/api/hello", None), context("Hello")).await.unwrap();
        assert_eq!(res.body, "Hello, world");
    }
}
