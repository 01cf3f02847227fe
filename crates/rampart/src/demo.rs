//! `rampart up --demo`: deploys the sample app `hello` with two replicas and
//! its own database (when the host has PostgreSQL) and prints how to reach
//! it.
//!
//! The app's static binary is built with this one (see build.rs) and packed
//! with a Dockerfile `FROM scratch` into a build context, so the demo needs
//! no registry and goes through the same deploy path as `rampart deploy`.

use std::net::SocketAddr;

use anyhow::Context;
use rampart_core::RequestId;
use rampart_core::wire::{CreateApp, DeployLine};
use rampart_platform::deploy::Source;
use rampart_platform::{Acting, Error, Platform};

const APP: &str = "hello";
/// The statically linked `examples/hello`.
static HELLO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello"));

const DOCKERFILE: &str = "FROM scratch\n\
COPY hello /hello\n\
USER 65534:65534\n\
EXPOSE 8080\n\
ENTRYPOINT [\"/hello\"]\n";

/// A build context holding the demo app and its Dockerfile.
pub fn context() -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
        ("hello", HELLO, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder.append_data(&mut header, name, data)?;
    }
    Ok(builder.into_inner()?)
}

pub async fn run(platform: &Platform, edge: SocketAddr) -> anyhow::Result<()> {
    let token_file = platform.data_dir().bootstrap_token();
    let token = std::fs::read_to_string(&token_file).with_context(|| {
        format!(
            "the demo acts as the owner and needs {}",
            token_file.display()
        )
    })?;
    let caller = platform
        .authenticate(token.trim())
        .await
        .context("the owner's bootstrap token is no longer valid")?;
    let request_id = RequestId::generate();
    let acting = Acting {
        caller: &caller,
        request_id: &request_id,
    };
    let app = match platform.app(APP).await {
        Ok(app) => app,
        Err(Error::NotFound(_)) => {
            let request = CreateApp {
                name: APP.into(),
                domains: None,
                with_db: false,
            };
            platform.create_app(acting, request).await?
        }
        Err(other) => return Err(other.into()),
    };
    let with_db = match platform.database_info(APP).await {
        Ok(_) => true,
        Err(Error::NotFound(_)) => match platform.create_database(acting, APP).await {
            Ok(db) => {
                println!("rampart: demo: created database {} for {APP}", db.database);
                true
            }
            Err(error) => {
                println!("rampart: demo: {APP} runs without a database: {error}");
                false
            }
        },
        Err(error) => {
            println!("rampart: demo: {APP} runs without a database: {error}");
            false
        }
    };
    let live = platform
        .deploys()
        .releases(APP)
        .await?
        .into_iter()
        .find(|r| r.status == rampart_core::deploy::ReleaseStatus::Live);
    let release = match live {
        Some(release) => release,
        None => {
            println!("rampart: demo: deploying {APP} (two replicas)");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let printer = tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    if let DeployLine::Step { message } = line {
                        println!("rampart: demo: {message}");
                    }
                }
            });
            let prepared = platform
                .deploys()
                .prepare_deploy(APP, Source::Build(context()?.into()))
                .await?;
            let deployed = platform.deploys().deploy(acting, prepared, tx).await;
            let _ = printer.await;
            deployed?
        }
    };
    let host = app
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{APP}.localhost"));
    let ca = platform.data_dir().ca_cert();
    println!(
        "rampart: demo: {APP} release {} is live at https://{host}:{}/",
        release.number,
        edge.port()
    );
    println!("rampart: demo: the CA certificate is {}", ca.display());
    println!(
        "rampart: demo: the owner's API token is in {}",
        token_file.display()
    );
    println!(
        "rampart: demo: try  curl --cacert {} --resolve {host}:{port}:{ip} https://{host}:{port}/",
        ca.display(),
        port = edge.port(),
        ip = edge.ip(),
    );
    if with_db {
        println!(
            "rampart: demo: and write to its database: curl --cacert {} --resolve {host}:{port}:{ip} -d 'a note' https://{host}:{port}/notes",
            ca.display(),
            port = edge.port(),
            ip = edge.ip(),
        );
    }
    Ok(())
}
