//! A private PgBouncer (Debian's `pgbouncer`), started by the test on a free port in front
//! of one PostgreSQL server, with an ini and a user list written here; killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::free_port;

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: tempfile_dir::Dir,
}

impl PgBouncer {
    /// PgBouncer on a free port, `pool_mode` (`transaction`, `session`), at most
    /// `pool_size` server connections per database, in front of 127.0.0.1:`server_port`.
    pub fn start(server_port: u16, pool_mode: &str, pool_size: u32) -> PgBouncer {
        let dir = tempfile_dir::Dir::new();
        let port = free_port();
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={server_port}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             auth_type = trust\nauth_file = {users}\npool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\nmax_client_conn = 1000\n\
             ; sqlx sends it at connect; PgBouncer 1.18 refuses unknown startup parameters\n\
             ignore_startup_parameters = extra_float_digits\n\
             unix_socket_dir =\nlogfile = {log}\npidfile =\n",
            users = dir.path("users.txt"),
            log = dir.path("pgbouncer.log"),
        );
        std::fs::write(dir.path("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(dir.path("pgbouncer.ini"), ini).unwrap();
        dir.open_to_all();
        let mut cmd = Command::new("pgbouncer");
        // PgBouncer refuses to run as root: drop to the server's user then.
        if is_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(dir.path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer is installed (apt-get install pgbouncer)");
        let bouncer = PgBouncer { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen:\n{}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A temporary directory that PgBouncer, running as another user, can read and write.
mod tempfile_dir {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("cbtest_pgb_{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self, file: &str) -> String {
            self.0.join(file).to_string_lossy().into_owned()
        }
        pub fn open_to_all(&self) {
            let all = |p: &PathBuf, mode| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
            };
            all(&self.0, 0o777);
            for f in std::fs::read_dir(&self.0).unwrap() {
                all(&f.unwrap().path(), 0o644);
            }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
