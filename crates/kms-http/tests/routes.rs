//! Every route, in process: real handlers and middleware, requests signed with SigV4.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{test, web};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_http::auth::SecretBytes;
use kms_http::sigv4::{sign, RequestParts, SigningInput, SigningService};
use kms_http::{AppState, Settings};
use serde_json::{json, Value};

const ROOT: (&str, &str) = ("admin", "admin-secret-key");
const MONITOR: (&str, &str) = ("monitor", "monitor-secret-key");

struct Harness {
    _dir: tempfile::TempDir,
    state: web::Data<AppState>,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let identities = dir.path().join("identities.toml");
    std::fs::write(
        &identities,
        format!(
            "[[user]]\naccess_key = '{}'\nsecret_key = '{}'\nactions = ['admin:ServerInfo']\n",
            MONITOR.0, MONITOR.1
        ),
    )
    .unwrap();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        region: "us-east-1".into(),
        identities_file: Some(identities),
        auto_configure: true,
        root_credentials: Some((ROOT.0.into(), SecretBytes::new(ROOT.1.as_bytes().to_vec()))),
        root_secret: None,
    };
    let (state, _) = AppState::open(settings).await.unwrap();
    Harness {
        _dir: dir,
        state: web::Data::new(state),
    }
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    body: Vec<u8>,
    service: SigningService,
    who: (&'a str, &'a str),
    extra: Vec<(&'a str, String)>,
}

impl<'a> Call<'a> {
    fn admin(method: &'a str, path: &'a str, body: Option<Value>) -> Self {
        Self {
            method,
            path,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            service: SigningService::ExecuteApi,
            who: ROOT,
            extra: vec![],
        }
    }

    fn s3(method: &'a str, path: &'a str, body: &[u8]) -> Self {
        Self {
            method,
            path,
            body: body.to_vec(),
            service: SigningService::S3,
            who: ROOT,
            extra: vec![],
        }
    }

    fn by(mut self, who: (&'a str, &'a str)) -> Self {
        self.who = who;
        self
    }

    fn header(mut self, name: &'a str, value: String) -> Self {
        self.extra.push((name, value));
        self
    }
}

async fn send(h: &Harness, call: Call<'_>) -> (u16, HeaderMap, Vec<u8>) {
    let app = test::init_service(kms_http::app(h.state.clone(), &[])).await;
    let (path, query) = call.path.split_once('?').unwrap_or((call.path, ""));
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("host"),
        HeaderValue::from_static("localhost:9000"),
    );
    headers.insert(
        HeaderName::from_static("x-amz-date"),
        HeaderValue::from_str(&amz_date).unwrap(),
    );
    for (name, value) in &call.extra {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let input = SigningInput {
        parts: RequestParts {
            method: call.method,
            path,
            query,
            headers: &headers,
        },
        body: &call.body,
        service: call.service,
        region: "us-east-1",
        access_key: call.who.0,
        secret_key: call.who.1.as_bytes(),
    };
    let authorization = sign(&input).unwrap();
    let mut req = test::TestRequest::default()
        .method(call.method.parse().unwrap())
        .uri(call.path)
        .insert_header(("authorization", authorization))
        .set_payload(call.body.clone());
    for (name, value) in headers.iter() {
        req = req.insert_header((name.clone(), value.clone()));
    }
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = test::read_body(res).await.to_vec();
    (status, headers, body)
}

async fn json_call(h: &Harness, call: Call<'_>) -> (u16, Value) {
    let (status, headers, body) = send(h, call).await;
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    if let Some(error) = value.get("error") {
        let header = headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_eq!(
            error["request_id"], header,
            "request id header and body differ"
        );
    }
    (status, value)
}

fn code(value: &Value) -> &str {
    value["error"]["code"].as_str().unwrap_or("")
}

async fn create_key(h: &Harness) -> String {
    let body =
        json!({"KeyUsage": "ENCRYPT_DECRYPT", "Description": "route test", "Tags": {"name": "t"}});
    let (status, v) = json_call(
        h,
        Call::admin("POST", "/rustfs/admin/v3/kms/keys", Some(body)),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["key_id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_first_start_is_running_with_the_default_key() {
    let h = harness().await;
    let (status, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/kms/service-status", None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "Running");
    assert_eq!(v["healthy"], true);
    assert_eq!(v["config_summary"]["default_key_id"], "default-master-key");
    let (status, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/kms/keys/default-master-key", None),
    )
    .await;
    assert_eq!(
        (status, v["key_metadata"]["key_state"].as_str()),
        (200, Some("Enabled"))
    );
}

#[actix_web::test]
async fn data_keys_round_trip_and_refuse_another_context() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    let context = json!({"bucket": "b", "size": 42});
    let generate = json!({"key_id": key_id, "key_spec": "AES_128", "encryption_context": context});
    let (status, dk) = json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/generate-data-key",
            Some(generate),
        ),
    )
    .await;
    assert_eq!(status, 200, "{dk}");
    assert_eq!(
        STANDARD
            .decode(dk["plaintext_key"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    let blob = dk["ciphertext_blob"].clone();
    let same =
        json!({"ciphertext_blob": blob, "encryption_context": {"bucket": "b", "size": "42"}});
    let (status, back) = json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/decrypt", Some(same)),
    )
    .await;
    assert_eq!((status, &back["plaintext"]), (200, &dk["plaintext_key"]));
    assert_eq!(back["key_id"], key_id.as_str());
    for other in [
        json!({"bucket": "b"}),
        json!({}),
        json!({"bucket": "b", "size": 43}),
    ] {
        let body = json!({"ciphertext_blob": blob, "encryption_context": other});
        let (status, v) = json_call(
            &h,
            Call::admin("POST", "/rustfs/admin/v3/kms/decrypt", Some(body)),
        )
        .await;
        assert_eq!((status, code(&v)), (400, "DecryptionFailed"), "{other}");
    }
}

#[actix_web::test]
async fn key_state_changes_gate_data_keys() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    let id = json!({"key_id": key_id});
    let generate = || {
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/generate-data-key",
            Some(json!({"key_id": key_id})),
        )
    };
    let (_, v) = json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/keys/disable",
            Some(id.clone()),
        ),
    )
    .await;
    assert_eq!(
        (
            v["key_metadata"]["enabled"].as_bool(),
            v["key_metadata"]["key_state"].as_str()
        ),
        (Some(false), Some("Disabled"))
    );
    let (status, v) = json_call(&h, generate()).await;
    assert_eq!((status, code(&v)), (400, "InvalidKeyState"));
    json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/keys/enable", Some(id.clone())),
    )
    .await;
    let delete = json!({"key_id": key_id, "pending_window_in_days": 10});
    let (status, v) = json_call(
        &h,
        Call::admin("DELETE", "/rustfs/admin/v3/kms/keys/delete", Some(delete)),
    )
    .await;
    assert_eq!(
        (status, v["pending_window_in_days"].as_i64()),
        (200, Some(10)),
        "{v}"
    );
    assert!(v["deletion_date"].as_str().is_some());
    let (status, v) = json_call(&h, generate()).await;
    assert_eq!((status, code(&v)), (400, "InvalidKeyState"));
    let (status, v) = json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/keys/cancel-deletion",
            Some(id.clone()),
        ),
    )
    .await;
    assert_eq!(
        (status, v["key_metadata"]["deletion_date"].clone()),
        (200, Value::Null)
    );
    assert_eq!(json_call(&h, generate()).await.0, 200);
    let (_, v) = json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/keys/rotate", Some(id.clone())),
    )
    .await;
    assert_eq!(v["key_metadata"]["current_version"], 2);
    let rotation = json!({"key_id": key_id, "enabled": true, "rotation_period_in_days": 90});
    let (_, v) = json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/keys/rotation", Some(rotation)),
    )
    .await;
    assert_eq!(
        (
            v["key_metadata"]["rotation_enabled"].as_bool(),
            v["key_metadata"]["rotation_period_in_days"].as_i64()
        ),
        (Some(true), Some(90))
    );
}

#[actix_web::test]
async fn listing_pages_with_markers() {
    let h = harness().await;
    for _ in 0..4 {
        create_key(&h).await;
    }
    let mut seen = Vec::new();
    let mut path = "/rustfs/admin/v3/kms/keys?limit=2".to_owned();
    loop {
        let (status, v) = json_call(&h, Call::admin("GET", &path, None)).await;
        assert_eq!(status, 200, "{v}");
        seen.extend(
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["key_id"].as_str().unwrap().to_owned()),
        );
        assert_eq!(
            v["truncated"].as_bool().unwrap(),
            !v["next_marker"].is_null()
        );
        match v["next_marker"].as_str() {
            Some(marker) => {
                path = format!("/rustfs/admin/v3/kms/list-keys?limit=2&marker={marker}")
            }
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
}

#[actix_web::test]
async fn bad_input_gets_the_documented_errors() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    let cases: Vec<(Call<'_>, u16, &str)> = vec![
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/keys",
                Some(json!({"Bogus": 1})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/keys",
                Some(json!({"Description": 5})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/keys",
                Some(json!({"KeyUsage": "SIGN_VERIFY"})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/keys",
                Some(json!({"Description": "x".repeat(257)})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "DELETE",
                "/rustfs/admin/v3/kms/keys/delete",
                Some(json!({"key_id": key_id, "pending_window_in_days": 6})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "DELETE",
                "/rustfs/admin/v3/kms/keys/delete",
                Some(json!({"key_id": "default-master-key"})),
            ),
            409,
            "Conflict",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/keys/cancel-deletion",
                Some(json!({"key_id": key_id})),
            ),
            400,
            "InvalidKeyState",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/keys?limit=0", None),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/keys?bogus=1", None),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/keys/no-such-key", None),
            404,
            "KeyNotFound",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/generate-data-key",
                Some(json!({"key_id": key_id, "encryption_context": {"a": 1.5}})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/decrypt",
                Some(json!({"ciphertext_blob": "!!"})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/decrypt",
                Some(json!({"ciphertext_blob": "AAAA"})),
            ),
            400,
            "DecryptionFailed",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/configure",
                Some(json!({"backend_type": "local", "default_key_id": "k", "timeout_seconds": 0})),
            ),
            400,
            "InvalidRequest",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/nothing", None),
            404,
            "NotFound",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/keys/delete", None),
            405,
            "MethodNotAllowed",
        ),
        (
            Call::admin(
                "POST",
                "/rustfs/admin/v3/kms/generate-data-key",
                Some(json!({"key_id": key_id})),
            )
            .by(MONITOR),
            403,
            "AccessDenied",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/status", None).by(("admin", "wrong-secret")),
            401,
            "AccessDenied",
        ),
        (
            Call::admin("GET", "/rustfs/admin/v3/kms/status", None).by(("nobody", "secret")),
            401,
            "AccessDenied",
        ),
    ];
    for (call, status, expected) in cases {
        let label = format!("{} {}", call.method, call.path);
        let (got, v) = json_call(&h, call).await;
        assert_eq!((got, code(&v)), (status, expected), "{label}: {v}");
    }
    let big = Call {
        body: vec![b' '; 1024 * 1024 + 1],
        ..Call::admin("POST", "/rustfs/admin/v3/kms/keys", None)
    };
    let (status, v) = json_call(&h, big).await;
    assert_eq!((status, code(&v)), (413, "RequestTooLarge"));
    let (_, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/kms/keys/default-master-key", None),
    )
    .await;
    assert_eq!(
        v["key_metadata"]["key_state"], "Enabled",
        "a refused request changed something"
    );
}

#[actix_web::test]
async fn a_stopped_service_refuses_key_routes_until_started() {
    let h = harness().await;
    let (status, v) = json_call(&h, Call::admin("POST", "/rustfs/admin/v3/kms/stop", None)).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("Stopped")));
    let (status, v) = json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/generate-data-key",
            Some(json!({})),
        ),
    )
    .await;
    assert_eq!((status, code(&v)), (409, "ServiceNotRunning"));
    let (_, v) = json_call(&h, Call::admin("GET", "/rustfs/admin/v3/kms/status", None)).await;
    assert_eq!(
        (v["backend_status"].as_str(), v["healthy"].as_bool()),
        (Some("stopped"), Some(false))
    );
    let config =
        json!({"backend_type": "local", "default_key_id": "second-default", "enable_cache": false});
    let (status, v) = json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/configure", Some(config)),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/kms/service-status", None),
    )
    .await;
    assert_eq!(v["status"], "Stopped", "configure must keep the run state");
    let (status, v) = json_call(&h, Call::admin("POST", "/rustfs/admin/v3/kms/start", None)).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("Running")));
    let (status, v) = json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/generate-data-key",
            Some(json!({})),
        ),
    )
    .await;
    assert_eq!(
        (status, v["key_id"].as_str()),
        (200, Some("second-default"))
    );
    let (_, v) = json_call(&h, Call::admin("GET", "/rustfs/admin/v3/kms/config", None)).await;
    assert_eq!(
        (v["cache_enabled"].as_bool(), v["default_key_id"].as_str()),
        (Some(false), Some("second-default"))
    );
}

#[actix_web::test]
async fn the_cache_counts_real_hits_and_can_be_cleared() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    for _ in 0..3 {
        let body = json!({"key_id": key_id});
        assert_eq!(
            json_call(
                &h,
                Call::admin("POST", "/rustfs/admin/v3/kms/generate-data-key", Some(body))
            )
            .await
            .0,
            200
        );
    }
    let (_, v) = json_call(&h, Call::admin("GET", "/rustfs/admin/v3/kms/status", None)).await;
    let (hits, misses) = (
        v["cache_stats"]["hit_count"].as_u64().unwrap(),
        v["cache_stats"]["miss_count"].as_u64().unwrap(),
    );
    assert!(hits >= 2 && misses >= 1, "{v}");
    let (status, v) = json_call(
        &h,
        Call::admin("POST", "/rustfs/admin/v3/kms/clear-cache", None),
    )
    .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("success")));
    json_call(
        &h,
        Call::admin(
            "POST",
            "/rustfs/admin/v3/kms/generate-data-key",
            Some(json!({"key_id": key_id})),
        ),
    )
    .await;
    let (_, v) = json_call(&h, Call::admin("GET", "/rustfs/admin/v3/kms/status", None)).await;
    assert_eq!(v["cache_stats"]["miss_count"].as_u64().unwrap(), misses + 1);
}

fn sse_kms_xml(key: &str) -> String {
    format!("<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>")
}

fn md5_of(body: &[u8]) -> String {
    use md5::Digest;
    STANDARD.encode(md5::Md5::digest(body))
}

#[actix_web::test]
async fn bucket_encryption_over_s3_and_its_json_mirror() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    assert_eq!(send(&h, Call::s3("PUT", "/photos", b"")).await.0, 200);
    let xml = sse_kms_xml(&format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}"));
    let put = Call::s3("PUT", "/photos?encryption", xml.as_bytes())
        .header("content-md5", md5_of(xml.as_bytes()));
    let (status, _, body) = send(&h, put).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(&h, Call::s3("GET", "/photos?encryption", b"")).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body)
        .contains(&format!("<KMSMasterKeyID>{key_id}</KMSMasterKeyID>")));

    let (status, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/api/v1/buckets", None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["Buckets"][0]["encryption"]["KMSMasterKeyID"],
        key_id.as_str()
    );
    let delete = json!({"key_id": key_id});
    let (_, v) = json_call(
        &h,
        Call::admin("DELETE", "/rustfs/admin/v3/kms/keys/delete", Some(delete)),
    )
    .await;
    assert_eq!(v["buckets_using_key"], json!(["photos"]));

    let bad = [
        (
            Call::s3("PUT", "/photos?encryption", xml.as_bytes()),
            400,
            "InvalidRequest",
        ),
        (
            Call::s3("PUT", "/photos?encryption", xml.as_bytes())
                .header("content-md5", md5_of(b"other")),
            400,
            "BadDigest",
        ),
        (
            Call::s3("PUT", "/photos?encryption", b"<nope/>")
                .header("content-md5", md5_of(b"<nope/>")),
            400,
            "MalformedXML",
        ),
        (
            Call::s3(
                "PUT",
                "/photos?encryption",
                sse_kms_xml("missing").as_bytes(),
            )
            .header("content-md5", md5_of(sse_kms_xml("missing").as_bytes())),
            400,
            "KMSKeyNotFound",
        ),
        (
            Call::s3("PUT", "/photos?encryption", sse_kms_xml(&key_id).as_bytes())
                .header("content-md5", md5_of(sse_kms_xml(&key_id).as_bytes())),
            400,
            "KMS.KMSInvalidStateException",
        ),
        (
            Call::s3("GET", "/nobucket?encryption", b""),
            404,
            "NoSuchBucket",
        ),
        (Call::s3("PUT", "/Bad_Name", b""), 400, "InvalidBucketName"),
        (Call::s3("PUT", "/rustfs", b""), 400, "InvalidBucketName"),
    ];
    for (call, status, expected) in bad {
        let label = format!("{} {}", call.method, call.path);
        let (got, headers, body) = send(&h, call).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "{label}: {text}");
        assert!(
            text.contains(&format!("<Code>{expected}</Code>")),
            "{label}: {text}"
        );
        let id = headers.get("x-amz-request-id").unwrap().to_str().unwrap();
        assert!(text.contains(&format!("<RequestId>{id}</RequestId>")));
    }

    let (status, _, _) = send(&h, Call::s3("DELETE", "/photos?encryption", b"")).await;
    assert_eq!(status, 204);
    let (status, v) = json_call(
        &h,
        Call::admin(
            "GET",
            "/rustfs/admin/v3/api/v1/bucket-encryption/photos",
            None,
        ),
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (404, "ServerSideEncryptionConfigurationNotFoundError")
    );
    let sse_s3 =
        json!({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]});
    let (status, v) = json_call(
        &h,
        Call::admin(
            "PUT",
            "/rustfs/admin/v3/api/v1/bucket-encryption/photos",
            Some(sse_s3),
        ),
    )
    .await;
    assert_eq!((status, v["success"].as_bool()), (200, Some(true)), "{v}");
    let (_, v) = json_call(
        &h,
        Call::admin(
            "GET",
            "/rustfs/admin/v3/api/v1/bucket-encryption/photos",
            None,
        ),
    )
    .await;
    assert_eq!(
        v["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    assert_eq!(send(&h, Call::s3("DELETE", "/photos", b"")).await.0, 204);
}

fn hostile_bodies(key_id: &str) -> Vec<Vec<u8>> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let values = [
        json!(null),
        json!(1),
        json!(-1),
        json!(1e308),
        json!("x"),
        json!([]),
        json!({}),
        json!({"a": {"b": {"c": [1, 2, {"d": null}]}}}),
        json!("é".repeat(10_000)),
    ];
    let mut bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"\xff\xfe".to_vec(),
        b"null".to_vec(),
        deep.into_bytes(),
        b"{\"key_id\": \"a\", \"key_id\": \"b\"}".to_vec(),
    ];
    let fields = [
        "key_id",
        "keyId",
        "KeyUsage",
        "Description",
        "Tags",
        "key_spec",
        "encryption_context",
        "ciphertext_blob",
        "pending_window_in_days",
        "enabled",
        "rotation_period_in_days",
        "backend_type",
        "default_key_id",
        "timeout_seconds",
        "Rules",
    ];
    for field in fields {
        for value in &values {
            bodies.push(json!({ field: value }).to_string().into_bytes());
            bodies.push(
                json!({ "key_id": key_id, field: value })
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    bodies
}

#[actix_web::test]
async fn hostile_json_never_causes_a_server_error() {
    let h = harness().await;
    let key_id = create_key(&h).await;
    let routes = [
        ("POST", "/rustfs/admin/v3/kms/keys"),
        ("POST", "/rustfs/admin/v3/kms/create-key"),
        ("DELETE", "/rustfs/admin/v3/kms/keys/delete"),
        ("POST", "/rustfs/admin/v3/kms/keys/cancel-deletion"),
        ("POST", "/rustfs/admin/v3/kms/keys/enable"),
        ("POST", "/rustfs/admin/v3/kms/keys/disable"),
        ("POST", "/rustfs/admin/v3/kms/keys/rotation"),
        ("POST", "/rustfs/admin/v3/kms/generate-data-key"),
        ("POST", "/rustfs/admin/v3/kms/decrypt"),
        ("POST", "/rustfs/admin/v3/kms/configure"),
        ("PUT", "/rustfs/admin/v3/api/v1/bucket-encryption/photos"),
    ];
    send(&h, Call::s3("PUT", "/photos", b"")).await;
    for body in hostile_bodies(&key_id) {
        for (method, path) in routes {
            let call = Call {
                body: body.clone(),
                ..Call::admin(method, path, None)
            };
            let (status, headers, reply) = send(&h, call).await;
            let text = String::from_utf8_lossy(&reply);
            assert!(
                status < 500,
                "{method} {path} with {:?}: {status} {text}",
                String::from_utf8_lossy(&body)
            );
            assert!(headers.get("x-request-id").is_some());
            if status >= 400 {
                let v: Value = serde_json::from_slice(&reply).expect("error bodies are JSON");
                assert!(v["error"]["code"].is_string());
            }
        }
    }
    let (_, v) = json_call(
        &h,
        Call::admin("GET", "/rustfs/admin/v3/kms/service-status", None),
    )
    .await;
    assert_eq!(
        v["status"], "Running",
        "a hostile body changed the service state"
    );
}
