//! The API in process, over a real SQLite store: every documented route
//! refuses callers without a valid token, and bad input gets a clear error
//! and changes nothing.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rampart_api::routes::{Access, access};
use rampart_core::config::Config;
use rampart_platform::{DataDir, Platform};
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

const BODY_LIMIT: usize = 4096;

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    router: Router,
    token: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    // These tests act as the bootstrap owner; MFA is covered through the binary.
    let config = Config::from_toml("[auth]\nrequire_mfa = false\n").unwrap();
    let (platform, boot) = Platform::open(data.clone(), &config).await.unwrap();
    let token = std::fs::read_to_string(boot.unwrap().token_file)
        .unwrap()
        .trim()
        .to_owned();
    let router = rampart_api::router(Arc::new(platform), BODY_LIMIT, 1 << 20);
    Fixture {
        _dir: dir,
        db: data.db(),
        router,
        token,
    }
}

impl Fixture {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert!(response.headers().contains_key("x-request-id"));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("response is not JSON: {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, value)
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let token = self.token.clone();
        self.send(
            method,
            path,
            Some(&token),
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// Everything the store holds except the audit log, as text.
    async fn state(&self) -> Vec<String> {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", self.db.display()))
            .await
            .unwrap();
        let mut out = Vec::new();
        for table in [
            "settings",
            "users",
            "api_tokens",
            "apps",
            "app_domains",
            "env_vars",
        ] {
            let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .fetch_all(&pool)
                .await
                .unwrap();
            for row in rows {
                let mut cells = vec![table.to_owned()];
                for i in 0..row.len() {
                    let text: Option<String> = row.try_get(i).ok().flatten();
                    let blob: Option<Vec<u8>> = row.try_get(i).ok().flatten();
                    let int: Option<i64> = row.try_get(i).ok().flatten();
                    cells.push(format!("{text:?}/{blob:?}/{int:?}"));
                }
                out.push(cells.join("|"));
            }
        }
        pool.close().await;
        out
    }

    async fn audit(&self) -> Vec<Value> {
        let token = self.token.clone();
        let (status, body) = self
            .send(
                Method::GET,
                "/api/audit?limit=10000",
                Some(&token),
                None,
                vec![],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body.as_array().unwrap().clone()
    }
}

/// Every (method, path template, needs a token) in the OpenAPI document.
fn documented_operations() -> Vec<(Method, String, bool)> {
    let doc = serde_json::to_value(rampart_api::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            out.push((method, path.clone(), secured));
        }
    }
    assert!(out.len() >= 14, "the document lists every route: {out:?}");
    out
}

fn concrete(template: &str, token_id: &str) -> String {
    template.replace("{app}", "shop").replace("{id}", token_id)
        + if template.ends_with("/env") {
            "?names=A"
        } else {
            ""
        }
}

#[tokio::test]
async fn every_documented_route_has_an_access_rule() {
    for (method, path, secured) in documented_operations() {
        let rule = access(&method, &path);
        assert!(rule.is_some(), "{method} {path} has no access rule");
        assert_eq!(
            rule == Some(Access::Public),
            !secured,
            "{method} {path}: the document and the gate disagree on whether it is public"
        );
    }
    let public: Vec<String> = documented_operations()
        .into_iter()
        .filter(|(_, _, secured)| !secured)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        public,
        [
            "GET /.well-known/security.txt",
            "GET /api/health",
            "POST /api/invitations/accept",
            "POST /api/sessions"
        ]
    );
}

#[tokio::test]
async fn routes_refuse_missing_wrong_and_revoked_tokens() {
    let f = fixture().await;
    let (status, _) = f
        .json(Method::POST, "/api/apps", json!({"name": "shop"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = f
        .json(
            Method::PUT,
            "/api/apps/shop/env",
            json!({"vars": {"A": "secret-a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = f
        .json(Method::POST, "/api/tokens", json!({"name": "doomed"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let revoked = created["token"].as_str().unwrap().to_owned();
    let revoked_id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/tokens/{revoked_id}");
    assert_eq!(
        f.json(Method::DELETE, &path, json!({})).await.0,
        StatusCode::NO_CONTENT
    );

    let unknown = rampart_core::token::generate().into_inner();
    let mut typo = f.token.clone();
    typo.replace_range(6..7, if &typo[6..7] == "a" { "b" } else { "a" });
    let before = f.state().await;
    let audit_before = f.audit().await.len();

    let bad_tokens: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("unknown token", Some(&unknown)),
        ("mistyped token", Some(&typo)),
        ("revoked token", Some(&revoked)),
        ("garbage", Some("rmp_short!\"")),
    ];
    let mut refused_audited = 0;
    for (method, template, secured) in documented_operations() {
        if !secured {
            continue;
        }
        let path = concrete(&template, &revoked_id);
        for (label, token) in &bad_tokens {
            let body = serde_json::to_vec(&json!({"name": "x", "vars": {"B": "1"}})).unwrap();
            let (status, body) = f
                .send(
                    method.clone(),
                    &path,
                    *token,
                    Some("application/json"),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {method} {path}");
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["error"],
                "{label}: {method} {path} leaks data: {body}"
            );
            assert_eq!(body["error"]["code"], "unauthenticated");
            if let Some(Access::Action(action)) = access(&method, &template)
                && action.is_audited()
            {
                refused_audited += 1;
            }
        }
    }
    assert_eq!(
        f.state().await,
        before,
        "refused requests changed the store"
    );
    let audit = f.audit().await;
    assert_eq!(audit.len(), audit_before + refused_audited);
    for entry in &audit[audit_before..] {
        assert_eq!(entry["outcome"], "denied");
        assert_eq!(entry["actor"], "anonymous");
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let f = fixture().await;
    assert_eq!(
        f.json(Method::POST, "/api/apps", json!({"name": "shop"}))
            .await
            .0,
        StatusCode::CREATED
    );
    let token = f.token.clone();
    let before = f.state().await;
    let audit_before = f.audit().await.len();

    struct Case {
        method: Method,
        path: &'static str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
        status: StatusCode,
        says: &'static str,
    }
    let case = |method, path, body: &str, status, says| Case {
        method,
        path,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        says,
    };
    let cases = vec![
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": ",
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": 7}",
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"nam\": \"x\"}",
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        case(
            Method::POST,
            "/api/apps",
            "\u{0}\u{ff}",
            StatusCode::BAD_REQUEST,
            "",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": \"Shop\"}",
            StatusCode::BAD_REQUEST,
            "only lowercase letters",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": \"-x\"}",
            StatusCode::BAD_REQUEST,
            "must not start or end with a hyphen",
        ),
        case(
            Method::POST,
            "/api/apps",
            &format!("{{\"name\": \"{}\"}}", "a".repeat(41)),
            StatusCode::BAD_REQUEST,
            "at most 40 characters",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": \"blog\", \"domains\": [\"shop.localhost\"]}",
            StatusCode::CONFLICT,
            "already belongs",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": \"shop\"}",
            StatusCode::CONFLICT,
            "already exists",
        ),
        case(
            Method::POST,
            "/api/apps",
            "{\"name\": \"blog\", \"domains\": [\"bad domain\"]}",
            StatusCode::BAD_REQUEST,
            "domain",
        ),
        case(
            Method::GET,
            "/api/apps/nope",
            "",
            StatusCode::NOT_FOUND,
            "no app named \"nope\"",
        ),
        case(
            Method::DELETE,
            "/api/apps/nope",
            "",
            StatusCode::NOT_FOUND,
            "no app named",
        ),
        case(
            Method::PUT,
            "/api/apps/nope/env",
            "{\"vars\": {\"A\": \"1\"}}",
            StatusCode::NOT_FOUND,
            "no app named",
        ),
        case(
            Method::PUT,
            "/api/apps/shop/env",
            "{\"vars\": {\"1A\": \"1\"}}",
            StatusCode::BAD_REQUEST,
            "must start with a letter",
        ),
        case(
            Method::PUT,
            "/api/apps/shop/env",
            "{\"vars\": {\"A\": \"ok\", \"B-\": \"1\"}}",
            StatusCode::BAD_REQUEST,
            "only letters, digits and underscores",
        ),
        case(
            Method::PUT,
            "/api/apps/shop/env",
            "{\"vars\": {}}",
            StatusCode::BAD_REQUEST,
            "no variables",
        ),
        case(
            Method::PUT,
            "/api/apps/shop/env",
            "{\"vars\": {\"A\": \"a\\u0000b\"}}",
            StatusCode::BAD_REQUEST,
            "NUL",
        ),
        case(
            Method::DELETE,
            "/api/apps/shop/env?names=NOPE",
            "",
            StatusCode::NOT_FOUND,
            "NOPE is not set",
        ),
        case(
            Method::DELETE,
            "/api/apps/shop/env",
            "",
            StatusCode::BAD_REQUEST,
            "names",
        ),
        case(
            Method::POST,
            "/api/apps/shop/env/reveal",
            "{\"names\": [\"NOPE\"]}",
            StatusCode::NOT_FOUND,
            "NOPE is not set",
        ),
        case(
            Method::POST,
            "/api/tokens",
            "{\"name\": \"\"}",
            StatusCode::BAD_REQUEST,
            "1 to 64 characters",
        ),
        case(
            Method::POST,
            "/api/tokens",
            "{\"name\": \"a\\nb\"}",
            StatusCode::BAD_REQUEST,
            "control characters",
        ),
        case(
            Method::DELETE,
            "/api/tokens/tok_nope",
            "",
            StatusCode::NOT_FOUND,
            "no token",
        ),
        case(
            Method::GET,
            "/api/audit?limit=0",
            "",
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        case(
            Method::GET,
            "/api/nowhere",
            "",
            StatusCode::NOT_FOUND,
            "no such API route",
        ),
        case(
            Method::PATCH,
            "/api/apps",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "",
        ),
        Case {
            method: Method::POST,
            path: "/api/apps",
            content_type: None,
            body: b"{\"name\": \"blog\"}".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            says: "application/json",
        },
        case(
            Method::POST,
            "/api/apps",
            &format!(
                "{{\"name\": \"blog\", \"domains\": [\"{}\"]}}",
                "a".repeat(BODY_LIMIT)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ];
    for c in cases {
        let (status, body) = f
            .send(
                c.method.clone(),
                c.path,
                Some(&token),
                c.content_type,
                c.body,
            )
            .await;
        assert_eq!(status, c.status, "{} {}: {body}", c.method, c.path);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(c.says),
            "{} {}: {message:?} should say {:?}",
            c.method,
            c.path,
            c.says
        );
        assert!(
            body["error"]["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        assert_eq!(
            f.state().await,
            before,
            "{} {} changed the store",
            c.method,
            c.path
        );
    }
    // Refused mutations are in the audit log as failures; reads are not.
    let audit = f.audit().await;
    let added: Vec<&Value> = audit[audit_before..].iter().collect();
    assert!(added.len() >= 15, "{added:?}");
    assert!(added.iter().all(|e| e["outcome"] == "failed"), "{added:?}");
}

#[tokio::test]
async fn secrets_are_listed_by_name_and_revealed_with_an_audit_entry() {
    let f = fixture().await;
    f.json(Method::POST, "/api/apps", json!({"name": "shop"}))
        .await;
    let (status, listed) = f
        .json(
            Method::PUT,
            "/api/apps/shop/env",
            json!({"vars": {"API_KEY": "k-123", "DEBUG": "0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listed.to_string().contains("k-123"));
    let token = f.token.clone();
    let (_, names) = f
        .send(
            Method::GET,
            "/api/apps/shop/env",
            Some(&token),
            None,
            vec![],
        )
        .await;
    assert!(!names.to_string().contains("k-123"));
    assert_eq!(names.as_array().unwrap().len(), 2);

    let (status, revealed) = f
        .json(
            Method::POST,
            "/api/apps/shop/env/reveal",
            json!({"names": ["API_KEY"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed, json!({"vars": {"API_KEY": "k-123"}}));
    let audit = f.audit().await;
    let last = audit.last().unwrap();
    assert_eq!(last["action"], "env.reveal");
    assert_eq!(last["target"], "apps/shop/env/API_KEY");
}
