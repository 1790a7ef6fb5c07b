-- wrk script: POST /Hello with the envelope the Functions host sends for GET /api/hello?name=Ada
-- (HttpRequestExtensions.GetRequestAsJObject shape, identity as in tests/fixtures/derived-http-trigger.request.json;
-- see tests/fixtures/README.md). The same body is in hello-invocation.json.
wrk.method = "POST"
wrk.path = "/Hello"
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["X-Azure-Functions-HostVersion"] = "4.1037.0.0"
wrk.headers["X-Azure-Functions-InvocationId"] = "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
wrk.headers["User-Agent"] = "Azure-Functions-Host/4.1037.0.0"
wrk.body = '{"Data":{"req":{"Url":"http://localhost:7071/api/hello?name=Ada","Method":"GET","Query":{"name":"Ada"},"Headers":{"Host":["localhost:7071"],"User-Agent":["curl/8.5.0"],"Accept":["*/*"]},"Params":{},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]}},"Metadata":{"Query":{"name":"Ada"},"Headers":{"Host":"localhost:7071","User-Agent":"curl/8.5.0","Accept":"*/*"},"name":"\\"Ada\\"","sys":{"MethodName":"Hello","UtcNow":"2024-05-01T10:00:00.1234567Z","RandGuid":"a0e3b8f4-1b5d-4c6e-8f70-9a1b2c3d4e5f"}}}'
