//! The floor: the least work any server must do to answer `generate-data-key`, served by the
//! same HTTP stack as kms-server (actix-web, one worker per core).
//!
//! One request here is: read the body, verify its SigV4 signature with the server's own
//! [`kms_http::sigv4::verify`], parse the JSON body for the key id, draw a 32-byte data key from
//! the operating system, seal it once with AES-256-GCM under a fixed key, answer JSON. No key
//! lookup, no state check, no envelope format, no logging: whatever kms-server spends beyond this
//! is what its design costs.

use std::net::SocketAddr;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kms_http::auth::SecretBytes;
use kms_http::sigv4::{self, RequestParts, SigningService};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::client::REGION;

/// The path the floor answers, the same as kms-server's so that requests are signed alike.
pub const GENERATE_PATH: &str = "/rustfs/admin/v3/kms/generate-data-key";

struct Floor {
    access_key: String,
    secret_key: SecretBytes,
    cipher: Aes256Gcm,
}

#[derive(Deserialize)]
struct Body {
    key_id: String,
}

/// Serves the floor on `address` until killed; credentials come from `KMS_ACCESS_KEY` and
/// `KMS_SECRET_KEY`, like kms-server's.
pub fn serve(address: SocketAddr, workers: usize) -> Result<()> {
    let access_key = std::env::var("KMS_ACCESS_KEY").context("KMS_ACCESS_KEY")?;
    let secret_key = std::env::var("KMS_SECRET_KEY").context("KMS_SECRET_KEY")?;
    let mut master = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(master.as_mut());
    let floor = web::Data::new(Floor {
        access_key,
        secret_key: SecretBytes::new(secret_key.into_bytes()),
        cipher: Aes256Gcm::new_from_slice(master.as_ref()).context("AES key")?,
    });
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(floor.clone())
                .route("/health", web::get().to(HttpResponse::Ok))
                .route(GENERATE_PATH, web::post().to(generate))
        })
        .workers(workers)
        .bind(address)
        .with_context(|| format!("binding {address}"))?
        .run()
        .await
        .context("serving")
    })
}

async fn generate(req: HttpRequest, body: web::Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let parts = RequestParts {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.query_string(),
        headers: req.headers(),
    };
    let secret_of =
        |access_key: &str| (access_key == floor.access_key).then(|| floor.secret_key.clone());
    let verified = sigv4::verify(
        &parts,
        &body,
        SigningService::ExecuteApi,
        REGION,
        chrono::Utc::now(),
        &secret_of,
    );
    if verified.is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(input) = serde_json::from_slice::<Body>(&body) else {
        return HttpResponse::BadRequest().finish();
    };

    let mut data_key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(data_key.as_mut());
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: data_key.as_ref(),
        aad: input.key_id.as_bytes(),
    };
    let Ok(sealed) = floor.cipher.encrypt(Nonce::from_slice(&nonce), payload) else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    HttpResponse::Ok().json(serde_json::json!({
        "key_id": input.key_id,
        "plaintext_key": STANDARD.encode(data_key.as_ref()),
        "ciphertext_blob": STANDARD.encode(&blob),
    }))
}
