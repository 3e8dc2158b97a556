//! One benchmark run, start to end: the peer and the floor started, each server prepared and
//! measured in turn, every process stopped, the report written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Method;
use kms_backend_local::{LocalBackend, RootSecret};
use kms_core::{Backend, CreateKeyRequest, Tags};
use md5::{Digest, Md5};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::client::{Auth, Client, Req, Signer};
use crate::load::{self, Shape, Target, Workload};
use crate::openbao::{self, OpenBao, TRANSIT_KEY};
use crate::paired::{self, Paired};
use crate::procs::{self, free_addr, Proc};
use crate::report::{group, op, Point, Report, Scale};
use crate::targets;

const ADMIN: &str = "/rustfs/admin/v3";
const BUCKET: &str = "bench-bucket";
/// A bucket without default encryption, for the unencrypted object points.
const PLAIN_BUCKET: &str = "bench-plain";
/// The size of the objects of the object points.
const OBJECT_SIZE: usize = 1024 * 1024;
const MIB: f64 = 1024.0;
/// Work directories (and log names) of the two local servers.
const FEW_KEYS_DIR: &str = "few-keys";
const MANY_KEYS_DIR: &str = "many-keys";

/// What to run, from the flags.
pub struct Plan {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Measured time per point.
    pub duration: Duration,
    /// Warm-up per point.
    pub warmup: Duration,
    /// Rounds of each paired comparison.
    pub pair_rounds: usize,
    /// Measured time of each side of a round.
    pub pair_slice: Duration,
    /// Warm-up of each side of a round.
    pub pair_warmup: Duration,
    /// Concurrencies of the main points.
    pub concurrencies: Vec<usize>,
    /// Concurrencies of the scale points.
    pub scale_concurrencies: Vec<usize>,
    /// Keys created before the main server starts.
    pub few_keys: usize,
    /// Keys created before the scale server starts.
    pub many_keys: usize,
    /// Whether the work directory stays after the run.
    pub keep_work: bool,
    /// Words naming the groups to run; empty for all.
    pub only: Vec<String>,
    /// Worker threads of the load generator.
    pub client_threads: usize,
    /// The kms-server binary.
    pub server_bin: PathBuf,
    /// Where `report.md`, `report.json`, the venv and the work directory go.
    pub out_dir: PathBuf,
    /// Where OpenBao is installed (shared by full and quick runs).
    pub venv_dir: PathBuf,
}

/// Random credentials and secrets for this run only.
struct Secrets {
    access_key: String,
    secret_key: String,
    root_secret: String,
    bao_token: String,
}

impl Secrets {
    fn random() -> Self {
        let text = |n| -> String {
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(n)
                .map(char::from)
                .collect()
        };
        Self {
            access_key: format!("BENCH{}", text(15).to_uppercase()),
            secret_key: text(40),
            root_secret: text(48),
            bao_token: format!("bench-{}", text(24)),
        }
    }
}

impl Secrets {
    /// Writes the secrets as shell assignments (mode 0600), so that a kept server can be
    /// started again by hand: `env $(cat secrets.env) kms-server --data-dir …`.
    fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "KMS_ACCESS_KEY={}\nKMS_SECRET_KEY={}\nKMS_ROOT_SECRET={}\n",
            self.access_key, self.secret_key, self.root_secret
        );
        kms_backend_local::write_atomic(path, text.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Everything a phase needs.
struct Bench {
    plan: Plan,
    secrets: Secrets,
    signer: Arc<Signer>,
    work: PathBuf,
    points: Vec<Point>,
}

/// Runs the whole benchmark and writes the report; returns it.
pub async fn run(plan: Plan) -> Result<Report> {
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let loadavg_before = crate::procs::loadavg_1m();
    let work = plan.out_dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let secrets = Secrets::random();
    if plan.keep_work {
        secrets.save(&work.join("secrets.env"))?;
    }
    let signer = Arc::new(Signer::new(&secrets.access_key, &secrets.secret_key));
    let mut bench = Bench {
        plan,
        secrets,
        signer,
        work,
        points: Vec::new(),
    };

    let mut scale = Vec::new();
    let mut sides = Sides::default();
    if bench.wants_any(&[group::LOCAL, group::FEW_KEYS, group::LOCAL_NO_CACHE]) {
        let (server, fixture, few) = bench.local_server().await?;
        scale.push(few);
        sides.local = Some(side(&server, None, "kms-server local", &fixture));
        sides.keep.push(server.proc);
    }
    if bench.wants(group::FLOOR) {
        let floor = bench.floor().await?;
        sides.floor = Some(paired::Side {
            label: "floor generate-data-key".to_owned(),
            target: Target::new(floor.1, floor.0.pid()),
            workload: generate("floor-key"),
        });
        sides.keep.push(floor.0);
    }
    let mut openbao_rss_mib = None;
    let mut bao = None;
    if bench.wants_any(&[group::OPENBAO, group::VAULT]) {
        let bao_bin = openbao::ensure_installed(&bench.plan.venv_dir)?;
        let token = bench.secrets.bao_token.clone();
        let started = OpenBao::start(&bao_bin, &bench.work, &token).await?;
        sides.openbao = Some(bench.openbao(&started).await?);
        if bench.wants(group::VAULT) {
            if let Some((server, fixture)) = bench.vault_server(&started).await? {
                let peer = Some(started.proc.pid());
                sides.vault = Some(side(&server, peer, "kms-server vault", &fixture));
                sides.keep.push(server.proc);
            }
        }
        openbao_rss_mib = started.proc.rss_kib().map(|kib| kib as f64 / MIB);
        bao = Some(started);
    }
    let paired = bench.paired(&sides).await;
    drop(sides);
    if let Some(bao) = bao {
        bao.proc.stop();
    }
    if bench.wants(group::MANY_KEYS) {
        scale.push(bench.many_keys_server().await?);
    }

    let mut report = Report {
        date,
        commit: commit(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        mode: bench.plan.mode.to_owned(),
        duration_s: bench.plan.duration.as_secs_f64(),
        warmup_s: bench.plan.warmup.as_secs_f64(),
        client_threads: bench.plan.client_threads,
        loadavg_before,
        loadavg_after: crate::procs::loadavg_1m(),
        points: std::mem::take(&mut bench.points),
        scale,
        paired,
        openbao_rss_mib,
        targets: Vec::new(),
        ratios: Vec::new(),
    };
    targets::judge_all(&mut report);
    write_report(&bench.plan.out_dir, &report)?;
    // The work directory holds up to 100,000 key files; they are of no use after the run.
    if !bench.plan.keep_work {
        let _ = std::fs::remove_dir_all(&bench.work);
    }
    Ok(report)
}

fn write_report(out: &Path, report: &Report) -> Result<()> {
    let md = report.markdown();
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    println!("{md}");
    eprintln!(
        "kms-bench: wrote {} and {}",
        out.join("report.md").display(),
        out.join("report.json").display()
    );
    Ok(())
}

/// A kms-server started by the bench.
struct Server {
    proc: Proc,
    addr: SocketAddr,
    startup: Duration,
}

/// The servers kept running for the paired comparisons, with what to send each; the processes
/// stop when this is dropped.
#[derive(Default)]
struct Sides {
    local: Option<(paired::Side, paired::Side)>,
    vault: Option<(paired::Side, paired::Side)>,
    floor: Option<paired::Side>,
    openbao: Option<(paired::Side, paired::Side)>,
    keep: Vec<Proc>,
}

/// The `generate-data-key` and `decrypt` sides of a kms-server.
fn side(
    server: &Server,
    peer: Option<u32>,
    label: &str,
    fixture: &Fixture,
) -> (paired::Side, paired::Side) {
    let target = Target {
        peer_pid: peer,
        ..Target::new(server.addr, server.proc.pid())
    };
    (
        paired::Side {
            label: format!("{label} {}", op::GENERATE),
            target,
            workload: generate(&fixture.hot_key),
        },
        paired::Side {
            label: format!("{label} {}", op::DECRYPT),
            target,
            workload: decrypt(&fixture.blob),
        },
    )
}

/// What a server needs set up before its points run.
struct Fixture {
    hot_key: String,
    blob: String,
    key_ids: Arc<Vec<String>>,
    full_pages: Arc<Vec<Option<String>>>,
}

impl Bench {
    fn wants(&self, group: &str) -> bool {
        let group = group.to_lowercase();
        self.plan.only.is_empty() || self.plan.only.iter().any(|word| group.contains(word))
    }

    fn wants_any(&self, groups: &[&str]) -> bool {
        groups.iter().any(|g| self.wants(g))
    }

    fn shape(&self, concurrency: usize) -> Shape {
        Shape {
            concurrency,
            warmup: self.plan.warmup,
            duration: self.plan.duration,
        }
    }

    /// The data key points of one server: generate and decrypt against the fixture's hot key,
    /// and describing it when `with_describe`.
    async fn data_key_points(
        &mut self,
        target: Target,
        group: &str,
        concurrencies: &[usize],
        fixture: &Fixture,
        with_describe: bool,
    ) {
        let generate_names = (group, op::GENERATE, GENERATE_ROUTE);
        self.points(
            target,
            generate_names,
            concurrencies,
            generate(&fixture.hot_key),
        )
        .await;
        let decrypt_names = (group, op::DECRYPT, DECRYPT_ROUTE);
        self.points(target, decrypt_names, concurrencies, decrypt(&fixture.blob))
            .await;
        if with_describe {
            let describe_names = (group, op::DESCRIBE, "GET /kms/keys/{id}");
            self.points(
                target,
                describe_names,
                concurrencies,
                describe(&fixture.hot_key),
            )
            .await;
        }
    }

    /// Runs one point at every concurrency in `concurrencies`.
    async fn points(
        &mut self,
        target: Target,
        names: (&str, &str, &str),
        concurrencies: &[usize],
        workload: Workload,
    ) {
        let (group, operation, route) = names;
        if !self.wants(group) {
            return;
        }
        for &concurrency in concurrencies {
            eprintln!("kms-bench: {group} · {operation} · concurrency {concurrency}");
            let shape = self.shape(concurrency);
            let m = load::run(target, self.signer.clone(), workload.clone(), shape).await;
            let point = Point::ran(group, operation, route, concurrency, m);
            if let (true, Some(m)) = (point.failed(), &point.measured) {
                eprintln!("kms-bench:   FAILED: {:?}", m.first_error);
            }
            self.points.push(point);
        }
    }

    async fn start_server(&self, name: &str, dir: &Path, extra: &[&str]) -> Result<Server> {
        let addr = free_addr()?;
        let mut command = Command::new(&self.plan.server_bin);
        command
            .arg("--address")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("KMS_ACCESS_KEY", &self.secrets.access_key)
            .env("KMS_SECRET_KEY", &self.secrets.secret_key)
            .env("KMS_ROOT_SECRET", &self.secrets.root_secret);
        let log = self.work.join(format!("{name}.log"));
        let mut proc = Proc::spawn(name, &mut command, &log)?;
        let startup = proc.wait_ready(addr, "/health").await?;
        Ok(Server {
            proc,
            addr,
            startup,
        })
    }

    /// Creates `count` keys in `dir/keys` through the local backend, before the server starts.
    async fn bulk_create(&self, dir: &Path, count: usize) -> Result<Duration> {
        let root = RootSecret::from_text(&self.secrets.root_secret)?;
        let backend = LocalBackend::open(dir.join("keys"), &root).await?;
        eprintln!("kms-bench: creating {count} keys in {}", dir.display());
        let started = Instant::now();
        for index in 0..count {
            let tags = Tags::new(BTreeMap::from([(
                "name".to_owned(),
                format!("bench-{index}"),
            )]))?;
            let request = CreateKeyRequest {
                key_id: None,
                description: format!("bench key {index}"),
                tags,
            };
            backend.create_key(request).await?;
            if (index + 1) % 10_000 == 0 {
                eprintln!("kms-bench:   {} keys, {:.0?}", index + 1, started.elapsed());
            }
        }
        Ok(started.elapsed())
    }

    /// Prepares a server with `keys` bench keys, starts it and takes its start-up figures.
    async fn prepared_server(&self, name: &str, keys: usize) -> Result<(Server, Scale)> {
        let dir = self.work.join(name);
        let created = self.bulk_create(&dir, keys).await?;
        let server = self.start_server(name, &dir, &[]).await?;
        let scale = Scale {
            server: if name == MANY_KEYS_DIR {
                targets::MANY
            } else {
                targets::FEW
            }
            .to_owned(),
            keys,
            bulk_create_s: created.as_secs_f64(),
            bulk_create_keys_per_s: keys as f64 / created.as_secs_f64().max(1e-9),
            startup_s: server.startup.as_secs_f64(),
            rss_idle_mib: server.proc.rss_kib().unwrap_or(0) as f64 / MIB,
            ..Scale::default()
        };
        eprintln!(
            "kms-bench: {name}: {keys} keys in {created:.1?}, start-up {:.3?}, {:.1} MiB RSS",
            server.startup, scale.rss_idle_mib
        );
        Ok((server, scale))
    }

    /// The main server: local backend, few keys; every hot path, cache on and off.
    async fn local_server(&mut self) -> Result<(Server, Fixture, Scale)> {
        let (server, mut scale) = self
            .prepared_server(FEW_KEYS_DIR, self.plan.few_keys)
            .await?;
        let fixture = self.fixture(server.addr, true).await?;
        scale.keys = fixture.key_ids.len();
        let target = Target::new(server.addr, server.proc.pid());
        let concs = self.plan.concurrencies.clone();
        let g = group::LOCAL;
        self.data_key_points(target, g, &concs, &fixture, true)
            .await;
        let list_route = "GET /kms/keys?limit=50";
        self.points(
            target,
            (g, op::LIST, list_route),
            &concs,
            list(Arc::new(vec![None])),
        )
        .await;
        let s3_route = "GET /{bucket}?encryption (s3)";
        self.points(
            target,
            (g, op::BUCKET_ENCRYPTION, s3_route),
            &concs,
            bucket_encryption(),
        )
        .await;

        self.object_points(target, &concs).await?;

        self.random_key_points(target, group::FEW_KEYS, &fixture)
            .await;
        scale.rss_after_load_mib = server.proc.rss_kib().unwrap_or(0) as f64 / MIB;
        scale.rss_peak_mib = server.proc.peak_rss_kib().unwrap_or(0) as f64 / MIB;

        self.reconfigure(server.addr, false).await?;
        let g = group::LOCAL_NO_CACHE;
        self.data_key_points(target, g, &concs, &fixture, true)
            .await;
        // Back to the default configuration for the paired comparisons.
        self.reconfigure(server.addr, true).await?;
        Ok((server, fixture, scale))
    }

    /// 1 MiB objects through the S3 API, under SSE-KMS (the bench bucket's default, so one
    /// data key per PUT and one unwrap per GET) and unencrypted (a bucket without default), so
    /// the report shows what encryption at rest costs on the same server.
    async fn object_points(&mut self, target: Target, concs: &[usize]) -> Result<()> {
        let mut client = Client::new(target.addr, self.signer.clone());
        client
            .expect_ok(&Req::get(format!("/{PLAIN_BUCKET}"), Auth::S3).with_method(Method::PUT))
            .await?;
        let body = object_body();
        for bucket in [BUCKET, PLAIN_BUCKET] {
            client.expect_ok(&put_object(bucket, "hot", &body)).await?;
        }
        let g = group::LOCAL;
        for (operation, bucket) in [
            (op::GET_OBJECT_KMS, BUCKET),
            (op::GET_OBJECT_PLAIN, PLAIN_BUCKET),
        ] {
            let route = "GET /{bucket}/{key} (s3)";
            let get = constant(Req::get(format!("/{bucket}/hot"), Auth::S3));
            self.points(target, (g, operation, route), concs, get).await;
        }
        for (operation, bucket) in [
            (op::PUT_OBJECT_KMS, BUCKET),
            (op::PUT_OBJECT_PLAIN, PLAIN_BUCKET),
        ] {
            let route = "PUT /{bucket}/{key} (s3)";
            let put = constant(put_object(bucket, "written", &body));
            self.points(target, (g, operation, route), concs, put).await;
        }
        Ok(())
    }

    /// The scale server: local backend, many keys.
    async fn many_keys_server(&mut self) -> Result<Scale> {
        let (server, mut scale) = self
            .prepared_server(MANY_KEYS_DIR, self.plan.many_keys)
            .await?;
        let fixture = self.fixture(server.addr, true).await?;
        scale.keys = fixture.key_ids.len();
        let target = Target::new(server.addr, server.proc.pid());
        self.random_key_points(target, group::MANY_KEYS, &fixture)
            .await;
        scale.rss_after_load_mib = server.proc.rss_kib().unwrap_or(0) as f64 / MIB;
        scale.rss_peak_mib = server.proc.peak_rss_kib().unwrap_or(0) as f64 / MIB;
        server.proc.stop();
        Ok(scale)
    }

    /// List a random full page, describe a random key, generate under a random key: the same
    /// on the server with few keys and the one with many, so their latencies compare.
    async fn random_key_points(&mut self, target: Target, g: &str, f: &Fixture) {
        let concs = self.plan.scale_concurrencies.clone();
        let list_route = "GET /kms/keys?limit=50&marker=<random full page>";
        self.points(
            target,
            (g, op::LIST, list_route),
            &concs,
            list(f.full_pages.clone()),
        )
        .await;
        let desc_route = "GET /kms/keys/{random id}";
        let describe = describe_random(f.key_ids.clone());
        self.points(target, (g, op::DESCRIBE, desc_route), &concs, describe)
            .await;
        let gen_route = "POST /kms/generate-data-key (random key)";
        let generate = generate_random(f.key_ids.clone());
        self.points(target, (g, op::GENERATE, gen_route), &concs, generate)
            .await;
    }

    /// A hot key, a ciphertext blob under it, a bucket encrypted with it, and (when `walk`) a walk
    /// through the whole listing for key ids and the markers of full pages.
    async fn fixture(&self, addr: SocketAddr, walk: bool) -> Result<Fixture> {
        let mut client = Client::new(addr, self.signer.clone());
        let body = json!({"Description": "bench hot key", "Tags": {"name": "bench-hot"}});
        let created = client
            .expect_ok(&Req::json(
                Method::POST,
                format!("{ADMIN}/kms/keys"),
                &body,
                Auth::Admin,
            ))
            .await?;
        let hot_key = text(&created["key_id"], "key_id")?;
        let generated = client.expect_ok(&generate(&hot_key)(&mut seeded())).await?;
        let blob = text(&generated["ciphertext_blob"], "ciphertext_blob")?;

        client
            .expect_ok(&Req::get(format!("/{BUCKET}"), Auth::S3).with_method(Method::PUT))
            .await?;
        client.expect_ok(&put_bucket_encryption(&hot_key)?).await?;

        let (key_ids, full_pages) = match walk {
            true => walk_listing(&mut client).await?,
            false => (Vec::new(), Vec::new()),
        };
        Ok(Fixture {
            hot_key,
            blob,
            key_ids: Arc::new(key_ids),
            full_pages: Arc::new(full_pages),
        })
    }

    async fn reconfigure(&self, addr: SocketAddr, enable_cache: bool) -> Result<()> {
        let mut client = Client::new(addr, self.signer.clone());
        let body = json!({
            "backend_type": "local",
            "default_key_id": "default-master-key",
            "key_directory": self.work.join(FEW_KEYS_DIR).join("keys"),
            "enable_cache": enable_cache,
        });
        let req = Req::json(
            Method::POST,
            format!("{ADMIN}/kms/reconfigure"),
            &body,
            Auth::Admin,
        );
        client.expect_ok(&req).await?;
        Ok(())
    }

    async fn floor(&mut self) -> Result<(Proc, SocketAddr)> {
        let addr = free_addr()?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("floor")
            .arg("--address")
            .arg(addr.to_string())
            .arg("--workers")
            .arg(workers.to_string())
            .env("KMS_ACCESS_KEY", &self.secrets.access_key)
            .env("KMS_SECRET_KEY", &self.secrets.secret_key);
        let mut proc = Proc::spawn("floor", &mut command, &self.work.join("floor.log"))?;
        proc.wait_ready(addr, "/health").await?;
        let concs = self.plan.concurrencies.clone();
        let names = (
            group::FLOOR,
            op::GENERATE,
            "POST /kms/generate-data-key (floor)",
        );
        let workload = generate("floor-key");
        self.points(Target::new(addr, proc.pid()), names, &concs, workload)
            .await;
        Ok((proc, addr))
    }

    async fn openbao(&mut self, bao: &OpenBao) -> Result<(paired::Side, paired::Side)> {
        let datakey_path = format!("/v1/transit/datakey/plaintext/{TRANSIT_KEY}");
        let decrypt_path = format!("/v1/transit/decrypt/{TRANSIT_KEY}");
        let datakey = bao.req(Method::POST, &datakey_path, &json!({}))?;
        let answer = bao.client().expect_ok(&datakey).await?;
        let ciphertext = text(&answer["data"]["ciphertext"], "data.ciphertext")?;
        let decrypt = bao.req(
            Method::POST,
            &decrypt_path,
            &json!({ "ciphertext": ciphertext }),
        )?;

        let target = Target::new(bao.addr, bao.proc.pid());
        let concs = self.plan.concurrencies.clone();
        let (datakey, decrypt) = (constant(datakey), constant(decrypt));
        let route = format!("POST {datakey_path}");
        let names = (group::OPENBAO, op::GENERATE, route.as_str());
        self.points(target, names, &concs, datakey.clone()).await;
        let route = format!("POST {decrypt_path}");
        let names = (group::OPENBAO, op::DECRYPT, route.as_str());
        self.points(target, names, &concs, decrypt.clone()).await;
        self.openbao_encrypt(bao, target).await?;
        Ok((
            paired::Side {
                label: "OpenBao Transit datakey".to_owned(),
                target,
                workload: datakey,
            },
            paired::Side {
                label: "OpenBao Transit decrypt".to_owned(),
                target,
                workload: decrypt,
            },
        ))
    }

    /// Transit `encrypt` of a 32-byte key with associated data: the one call the Vault backend
    /// makes per `generate-data-key`, measured alone, so the report shows what OpenBao itself
    /// spends on the backend's behalf.
    async fn openbao_encrypt(&mut self, bao: &OpenBao, target: Target) -> Result<()> {
        let path = format!("/v1/transit/encrypt/{TRANSIT_KEY}");
        let route = format!("POST {path} (with associated_data)");
        let names = (group::OPENBAO, op::TRANSIT_ENCRYPT, route.as_str());
        let mut data_key = [0u8; 32];
        rand::thread_rng().fill(&mut data_key);
        let body = json!({
            "plaintext": STANDARD.encode(data_key),
            "associated_data": STANDARD.encode(format!("kms-bench-envelope-header:{BUCKET}")),
            "key_version": 1,
        });
        let encrypt = bao.req(Method::POST, &path, &body)?;
        if let Err(e) = bao.client().expect_ok(&encrypt).await {
            let why = format!("Transit refused the call: {e:#}");
            for &c in &self.plan.concurrencies {
                self.points
                    .push(Point::skipped(names.0, names.1, names.2, c, &why));
            }
            return Ok(());
        }
        let concs = self.plan.concurrencies.clone();
        self.points(target, names, &concs, constant(encrypt)).await;
        Ok(())
    }

    /// kms-server configured on the OpenBao peer, if the Vault backend is available.
    async fn vault_server(&mut self, bao: &OpenBao) -> Result<Option<(Server, Fixture)>> {
        let dir = self.work.join("vault");
        let server = self
            .start_server("vault", &dir, &["--no-auto-configure"])
            .await?;
        let mut client = Client::new(server.addr, self.signer.clone());
        let body = json!({
            "backend_type": "vault",
            "default_key_id": "bench-default",
            "address": format!("http://{}", bao.addr),
            "auth_method": { "token": bao.token },
            "mount_path": "transit",
            "kv_mount": "secret",
        });
        let req = Req::json(
            Method::POST,
            format!("{ADMIN}/kms/configure"),
            &body,
            Auth::Admin,
        );
        let (status, answer) = client.send(&req).await?;
        if !status.is_success() {
            let answer = String::from_utf8_lossy(&answer);
            let why = if status.as_u16() == 400 && answer.contains("not available") {
                "vault backend not available".to_owned()
            } else {
                format!("configure answered {status}: {answer}")
            };
            eprintln!("kms-bench: {} skipped: {why}", group::VAULT);
            for &c in &self.plan.concurrencies {
                self.points.push(Point::skipped(
                    group::VAULT,
                    op::GENERATE,
                    GENERATE_ROUTE,
                    c,
                    &why,
                ));
                self.points.push(Point::skipped(
                    group::VAULT,
                    op::DECRYPT,
                    DECRYPT_ROUTE,
                    c,
                    &why,
                ));
            }
            server.proc.stop();
            return Ok(None);
        }
        let start = Req::get(format!("{ADMIN}/kms/start"), Auth::Admin).with_method(Method::POST);
        client.expect_ok(&start).await?;
        let fixture = self.fixture(server.addr, false).await?;
        let target = Target {
            peer_pid: Some(bao.proc.pid()),
            ..Target::new(server.addr, server.proc.pid())
        };
        let concs = self.plan.concurrencies.clone();
        self.data_key_points(target, group::VAULT, &concs, &fixture, false)
            .await;
        Ok(Some((server, fixture)))
    }

    /// The target ratios, measured in alternation while every server runs (see [`paired`]).
    async fn paired(&self, sides: &Sides) -> Vec<Paired> {
        let shape = Shape {
            concurrency: targets::TARGET_CONCURRENCY,
            warmup: self.plan.pair_warmup,
            duration: self.plan.pair_slice,
        };
        let local_gen = sides.local.as_ref().map(|s| &s.0);
        let bao = sides.openbao.as_ref();
        let vault = sides.vault.as_ref();
        let candidates = [
            (targets::PAIR_LOCAL_OPENBAO, local_gen, bao.map(|b| &b.0)),
            (targets::PAIR_LOCAL_FLOOR, local_gen, sides.floor.as_ref()),
            (
                targets::PAIR_VAULT_GENERATE,
                vault.map(|v| &v.0),
                bao.map(|b| &b.0),
            ),
            (
                targets::PAIR_VAULT_DECRYPT,
                vault.map(|v| &v.1),
                bao.map(|b| &b.1),
            ),
        ];
        let mut results = Vec::new();
        for (name, ours, theirs) in candidates {
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                let pair = paired::Pair {
                    name,
                    ours: ours.clone(),
                    theirs: theirs.clone(),
                };
                let result = paired::run(&pair, &self.signer, self.plan.pair_rounds, shape).await;
                if !result.ok() {
                    eprintln!("kms-bench:   FAILED: {:?}", result.first_error);
                }
                results.push(result);
            }
        }
        if let (Some(vault), Some(bao)) = (vault, bao) {
            results.extend(self.pinned_pairs(vault, bao, shape).await);
        }
        results
    }

    /// The Vault backend's pairs again with OpenBao alone on the last core and everything else
    /// (kms-server, this load generator) on the others: on one machine every microsecond
    /// kms-server spends is taken from OpenBao, which a deployment with OpenBao on its own
    /// machine does not suffer. Skipped without `taskset` or with a single core.
    async fn pinned_pairs(
        &self,
        vault: &(paired::Side, paired::Side),
        bao: &(paired::Side, paired::Side),
        shape: Shape,
    ) -> Vec<Paired> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (Some(server), Some(openbao)) = (vault.0.target.pid, vault.0.target.peer_pid) else {
            return Vec::new();
        };
        let (all, others, last) = (
            format!("0-{}", cores - 1),
            format!("0-{}", cores.saturating_sub(2)),
            (cores - 1).to_string(),
        );
        let me = std::process::id();
        if cores < 2 || !procs::pin(openbao, &last) {
            eprintln!("kms-bench: pinned pairs skipped (need 2 cores and taskset)");
            return Vec::new();
        }
        let pinned = procs::pin(server, &others) && procs::pin(me, &others);
        let mut results = Vec::new();
        if pinned {
            for (name, ours, theirs) in [
                (targets::PAIR_VAULT_GENERATE_PINNED, &vault.0, &bao.0),
                (targets::PAIR_VAULT_DECRYPT_PINNED, &vault.1, &bao.1),
            ] {
                let pair = paired::Pair {
                    name,
                    ours: ours.clone(),
                    theirs: theirs.clone(),
                };
                results.push(paired::run(&pair, &self.signer, self.plan.pair_rounds, shape).await);
            }
        }
        for pid in [openbao, server, me] {
            procs::pin(pid, &all);
        }
        results
    }
}

impl Req {
    fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

fn seeded() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

fn text(value: &Value, what: &str) -> Result<String> {
    match value.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => bail!("the answer has no {what}: {value}"),
    }
}

/// The same request every time.
fn constant(req: Req) -> Workload {
    Arc::new(move |_| req.clone())
}

const GENERATE_ROUTE: &str = "POST /kms/generate-data-key";
const DECRYPT_ROUTE: &str = "POST /kms/decrypt";

fn generate_body(key_id: &str) -> Value {
    json!({
        "key_id": key_id,
        "key_spec": "AES_256",
        "encryption_context": { "bucket": BUCKET },
    })
}

fn generate(key_id: &str) -> Workload {
    let path = format!("{ADMIN}/kms/generate-data-key");
    constant(Req::json(
        Method::POST,
        path,
        &generate_body(key_id),
        Auth::Admin,
    ))
}

fn generate_random(ids: Arc<Vec<String>>) -> Workload {
    let path = format!("{ADMIN}/kms/generate-data-key");
    Arc::new(move |rng| {
        let id = &ids[rng.gen_range(0..ids.len())];
        Req::json(Method::POST, path.clone(), &generate_body(id), Auth::Admin)
    })
}

fn decrypt(blob: &str) -> Workload {
    let body = json!({ "ciphertext_blob": blob, "encryption_context": { "bucket": BUCKET } });
    constant(Req::json(
        Method::POST,
        format!("{ADMIN}/kms/decrypt"),
        &body,
        Auth::Admin,
    ))
}

fn describe(key_id: &str) -> Workload {
    constant(Req::get(format!("{ADMIN}/kms/keys/{key_id}"), Auth::Admin))
}

fn describe_random(ids: Arc<Vec<String>>) -> Workload {
    Arc::new(move |rng| {
        let id = &ids[rng.gen_range(0..ids.len())];
        Req::get(format!("{ADMIN}/kms/keys/{id}"), Auth::Admin)
    })
}

/// A page of 50 from a random one of `markers` (`None`: the first page).
fn list(markers: Arc<Vec<Option<String>>>) -> Workload {
    Arc::new(move |rng| {
        let path = match &markers[rng.gen_range(0..markers.len())] {
            Some(marker) => format!("{ADMIN}/kms/keys?limit=50&marker={marker}"),
            None => format!("{ADMIN}/kms/keys?limit=50"),
        };
        Req::get(path, Auth::Admin)
    })
}

fn object_body() -> bytes::Bytes {
    let mut rng = seeded();
    (0..OBJECT_SIZE).map(|_| rng.gen::<u8>()).collect()
}

fn put_object(bucket: &str, key: &str, body: &bytes::Bytes) -> Req {
    Req {
        method: Method::PUT,
        path: format!("/{bucket}/{key}"),
        body: body.clone(),
        headers: Vec::new(),
        auth: Auth::S3,
    }
}

fn bucket_encryption() -> Workload {
    constant(Req::get(format!("/{BUCKET}?encryption"), Auth::S3))
}

fn put_bucket_encryption(key_id: &str) -> Result<Req> {
    let xml = format!(
        "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>\
         <KMSMasterKeyID>{key_id}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>\
         </Rule></ServerSideEncryptionConfiguration>"
    );
    let md5 = STANDARD.encode(Md5::digest(xml.as_bytes()));
    Req {
        method: Method::PUT,
        path: format!("/{BUCKET}?encryption"),
        body: xml.into_bytes().into(),
        headers: Vec::new(),
        auth: Auth::S3,
    }
    .header("content-md5", &md5)?
    .header("content-type", "application/xml")
}

/// Pages through every key, 50 at a time: all key ids, and the markers (`None` for the first)
/// whose page is full, so random pages all hold 50 keys.
async fn walk_listing(client: &mut Client) -> Result<(Vec<String>, Vec<Option<String>>)> {
    let mut ids = Vec::new();
    let mut full_pages = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("{ADMIN}/kms/keys?limit=50&marker={m}"),
            None => format!("{ADMIN}/kms/keys?limit=50"),
        };
        let page = client.expect_ok(&Req::get(path, Auth::Admin)).await?;
        let keys = page["keys"].as_array().context("the listing has no keys")?;
        if keys.len() == 50 {
            full_pages.push(marker.clone());
        }
        for key in keys {
            ids.push(text(&key["key_id"], "key_id")?);
        }
        match page["next_marker"].as_str() {
            Some(next) => marker = Some(next.to_owned()),
            None => break,
        }
    }
    if full_pages.is_empty() {
        bail!("fewer than 50 keys: no full page to list");
    }
    Ok((ids, full_pages))
}

/// The processor's name, from the first `model name` line of `/proc/cpuinfo`.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// The commit measured: `git rev-parse HEAD`, `-dirty` when the work tree has changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head}-dirty"),
            _ => head,
        },
        None => "unknown".to_owned(),
    }
}
