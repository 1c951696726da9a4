//! A private PgBouncer (Debian's `pgbouncer`) for `bench fleet --via-pgbouncer`: started on a
//! free loopback port in front of the bench's PostgreSQL server, with an ini and a user list
//! written to a temporary directory; killed (and the directory removed) when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// PgBouncer in `pool_mode` with at most `pool_size` server connections per database, in
    /// front of the server that `database_url` names (its user, and password if any, are the
    /// ones PgBouncer logs in with).
    pub async fn start(
        database_url: &str,
        pool_mode: &str,
        pool_size: u32,
    ) -> anyhow::Result<Self> {
        let url = url::Url::parse(database_url)?;
        let host = url.host_str().unwrap_or("127.0.0.1");
        let server_port = url.port().unwrap_or(5432);
        let user = match url.username() {
            "" => "postgres",
            u => u,
        };
        let password = url.password().unwrap_or("");
        anyhow::ensure!(
            !format!("{user}{password}").contains(['"', '\n']),
            "the database user or password holds a quote or a newline: not written to a user list"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("callbackd_bench_pgb_{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir)?;
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             auth_type = trust\nauth_file = {users}\npool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\nmax_client_conn = 2000\n\
             ; sqlx sends it at connect; PgBouncer 1.18 refuses unknown startup parameters\n\
             ignore_startup_parameters = extra_float_digits\n\
             unix_socket_dir =\nlogfile = {log}\npidfile =\n",
            users = path("users.txt"),
            log = path("pgbouncer.log"),
        );
        // With auth_type = trust PgBouncer lets clients in without a password, and logs in to
        // the server with the password written here.
        std::fs::write(path("users.txt"), format!("\"{user}\" \"{password}\"\n"))?;
        std::fs::write(path("pgbouncer.ini"), ini)?;
        // PgBouncer refuses to run as root; run as root, it drops to the server's user, who
        // must read the ini and write the log here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        std::fs::set_permissions(
            path("pgbouncer.ini"),
            std::fs::Permissions::from_mode(0o644),
        )?;
        std::fs::set_permissions(path("users.txt"), std::fs::Permissions::from_mode(0o644))?;
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("pgbouncer");
        let mut cmd = Command::new(binary);
        if is_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting pgbouncer (apt-get install pgbouncer): {e}"))?;
        let bouncer = PgBouncer { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "pgbouncer did not listen within 10 s:\n{}",
                bouncer.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(bouncer)
    }

    /// `database_url` with its host and port replaced by the pooler's.
    pub fn url(&self, database_url: &str) -> anyhow::Result<String> {
        let mut url = url::Url::parse(database_url)?;
        url.set_host(Some("127.0.0.1"))?;
        url.set_port(Some(self.port))
            .map_err(|()| anyhow::anyhow!("cannot set a port on {url}"))?;
        Ok(url.to_string())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
