//! `scrip dev`: when no Postgres answers at `DATABASE_URL` but the server binaries are installed, run a private
//! cluster under a local data directory, on the URL's port, for as long as `scrip dev` runs.

use crate::BoxError;
use sqlx::postgres::PgConnectOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

pub struct PrivateCluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

/// Starts (initialising on first use) a cluster in `dir` reachable at `url`'s host and port.
pub fn start_private_cluster(url: &str, dir: &Path) -> Result<PrivateCluster, BoxError> {
    let options = PgConnectOptions::from_str(url)?;
    let bin = server_binaries().ok_or(
        "no Postgres server answers at DATABASE_URL and no Postgres server binaries were found \
         (install Debian's postgresql package, or point DATABASE_URL at a running server)",
    )?;
    // initdb refuses to run as root; the cluster then belongs to the `postgres` system user.
    let as_postgres = is_root();
    let data = std::path::absolute(dir.join("pgdata"))?;
    let sockets = std::path::absolute(dir.join("sockets"))?;
    std::fs::create_dir_all(&sockets)?;
    let cluster = PrivateCluster {
        pg_ctl: bin.join("pg_ctl"),
        data: data.clone(),
        as_postgres,
    };
    if as_postgres {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir))?;
    }
    if !data.join("PG_VERSION").exists() {
        tracing::info!(dir = %data.display(), "initialising a private Postgres cluster");
        let mut initdb = cluster.command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "--auth=trust",
            "--encoding=UTF8",
            "-U",
            options.get_username(),
        ]);
        run(&mut initdb)?;
    }
    let settings = format!(
        "-p {} -k {} -c listen_addresses={}",
        options.get_port(),
        sockets.display(),
        options.get_host()
    );
    let mut start = cluster.command(&cluster.pg_ctl);
    start
        .arg("start")
        .arg("-w")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-o", &settings]);
    run(&mut start)?;
    tracing::info!(
        port = options.get_port(),
        "private Postgres cluster started"
    );
    Ok(cluster)
}

impl PrivateCluster {
    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    pub fn stop(&self) {
        let mut stop = self.command(&self.pg_ctl);
        stop.arg("stop")
            .arg("-m")
            .arg("fast")
            .arg("-D")
            .arg(&self.data);
        if let Err(err) = run(&mut stop) {
            tracing::warn!(error = %err, "could not stop the private Postgres cluster");
        }
    }
}

/// The newest installed server's bin directory (Debian keeps them under /usr/lib/postgresql/N/bin).
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let on_path = std::env::var_os("PATH")?;
        std::env::split_paths(&on_path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn run(command: &mut Command) -> Result<(), BoxError> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{:?} failed: {}{}",
        command.get_program(),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
    .into())
}
