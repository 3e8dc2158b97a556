//! The client side: requests signed with SigV4 by `aws-sigv4`, exactly as an AWS SDK signs them,
//! sent over kept-alive HTTP/1.1 connections, one connection per simulated caller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The region every request is signed for (the server's default).
pub const REGION: &str = "us-east-1";

/// How a request is authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// SigV4 for service `execute-api`, as the guide's admin clients sign.
    Admin,
    /// SigV4 for service `s3`, with `x-amz-content-sha256`, as the S3 SDKs sign.
    S3,
    /// Nothing added; the request carries its own credentials (a Vault token) if any.
    None,
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct Req {
    /// The method.
    pub method: Method,
    /// The path and query, already percent-encoded.
    pub path: String,
    /// The body (empty for GET).
    pub body: Bytes,
    /// Headers beyond `host` and the signature (content type, Content-MD5, Vault token).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How to authenticate it.
    pub auth: Auth,
}

impl Req {
    /// A GET without a body.
    pub fn get(path: impl Into<String>, auth: Auth) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Bytes::new(),
            headers: Vec::new(),
            auth,
        }
    }

    /// A request with a JSON body.
    pub fn json(
        method: Method,
        path: impl Into<String>,
        body: &serde_json::Value,
        auth: Auth,
    ) -> Self {
        Self {
            method,
            path: path.into(),
            body: Bytes::from(body.to_string()),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            auth,
        }
    }

    /// Adds one header.
    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self> {
        let value = HeaderValue::from_str(value).context("header value")?;
        self.headers.push((HeaderName::from_static(name), value));
        Ok(self)
    }
}

/// The credentials requests are signed with.
pub struct Signer {
    identity: Identity,
}

impl Signer {
    /// A signer for one access key and secret.
    pub fn new(access_key: &str, secret_key: &str) -> Self {
        let credentials = Credentials::new(access_key, secret_key, None, None, "kms-bench");
        Self {
            identity: Identity::from(credentials),
        }
    }

    /// Signs `request` in place for `auth`, with the current time, as the AWS SDKs do: admin
    /// requests with the default settings (double-encoded, normalised path), S3 requests with
    /// single encoding, no normalisation and the `x-amz-content-sha256` header.
    fn sign(&self, request: &mut Request<Full<Bytes>>, body: &[u8], auth: Auth) -> Result<()> {
        let mut settings = SigningSettings::default();
        let service = match auth {
            Auth::None => return Ok(()),
            Auth::Admin => "execute-api",
            Auth::S3 => {
                settings.percent_encoding_mode = PercentEncodingMode::Single;
                settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                "s3"
            }
        };
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(REGION)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .context("signing parameters")?
            .into();
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let uri = format!("http://{host}{}", request.uri());
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .context("signable request")?;
        let (instructions, _signature) = sign(signable, &params).context("signing")?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// One kept-alive HTTP/1.1 connection to one server, reopened after a transport error.
pub struct Client {
    addr: SocketAddr,
    host: HeaderValue,
    signer: Arc<Signer>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client for the server at `addr`; the connection opens with the first request.
    pub fn new(addr: SocketAddr, signer: Arc<Signer>) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        Self {
            addr,
            host,
            signer,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Signs and sends one request and reads the whole response body. A transport error drops
    /// the connection, so the next call opens a new one.
    pub async fn send(&mut self, req: &Req) -> Result<(StatusCode, Bytes)> {
        let result = self.try_send(req).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(&mut self, req: &Req) -> Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(req.method.clone())
            .uri(&req.path)
            .body(Full::new(req.body.clone()))
            .context("building the request")?;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        for (name, value) in &req.headers {
            headers.insert(name.clone(), value.clone());
        }
        self.signer.sign(&mut request, &req.body, req.auth)?;

        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(self.connect().await?),
        };
        sender.ready().await.context("connection closed")?;
        let response = sender.send_request(request).await.context("sending")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        Ok((status, body))
    }

    /// Sends a request that must succeed and returns its body as JSON (`null` when empty).
    pub async fn expect_ok(&mut self, req: &Req) -> Result<serde_json::Value> {
        let (status, body) = self.send(req).await?;
        if !status.is_success() {
            bail!(
                "{} {} answered {status}: {}",
                req.method,
                req.path,
                String::from_utf8_lossy(&body)
            );
        }
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).or(Ok(serde_json::Value::Null))
    }
}
