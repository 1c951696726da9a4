//! The machine's interpreters and compilers, one runner per language of docs/verify/. A
//! missing tool fails the test with the Debian package that provides it: a recipe no test
//! runs must not ship.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One recipe, ready to run: the program and the arguments before `<scheme> <request>`.
pub struct Runner {
    pub language: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

/// The docs/verify/ directory of this checkout.
pub fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify")
}

/// Runs `program args`, panicking with the package to install when it is not there.
fn tool(program: &str, args: &[&str], package: &str, env: &[(&str, String)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| {
            panic!("`{program}` is needed to run the docs/verify recipes ({e}): apt-get install -y {package}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every language's runner; compiled languages are built once into `work`.
pub fn all(work: &Path) -> Vec<Runner> {
    let dir = recipes_dir();
    let src = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let work_s = work.to_string_lossy().into_owned();

    tool("python3", &["--version"], "python3", &[]);
    tool("node", &["--version"], "nodejs", &[]);
    tool("php", &["--version"], "php-cli", &[]);
    tool(
        "javac",
        &["-d", &work_s, &src("Verify.java")],
        "openjdk-17-jdk-headless",
        &[],
    );
    // Go builds with the standard library only: no module proxy, a cache of our own.
    let go_env = vec![
        (
            "GOCACHE",
            work.join("gocache").to_string_lossy().into_owned(),
        ),
        ("GO111MODULE", "off".to_string()),
        ("GOPROXY", "off".to_string()),
    ];
    let go_bin = work.join("verify-go");
    tool(
        "go",
        &["build", "-o", &go_bin.to_string_lossy(), &src("verify.go")],
        "golang-go",
        &go_env,
    );

    vec![
        Runner::new("python", "python3", vec![src("verify.py")]),
        Runner::new("node", "node", vec![src("verify.js")]),
        Runner::new("php", "php", vec![src("verify.php")]),
        Runner::new("java", "java", vec!["-cp".into(), work_s, "Verify".into()]),
        Runner::new("go", &go_bin.to_string_lossy(), vec![]),
    ]
}

impl Runner {
    fn new(language: &'static str, program: &str, args: Vec<String>) -> Runner {
        Runner {
            language,
            program: program.into(),
            args,
        }
    }

    /// Runs the recipe on one request; its one output line and whether it exited 0.
    pub fn verify(
        &self,
        scheme: &str,
        request: &Path,
        secret: &str,
        now: Option<i64>,
        seen: &Path,
    ) -> (String, bool) {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .arg(scheme)
            .arg(request)
            .env("VERIFY_SECRET", secret)
            .env("VERIFY_SEEN", seen)
            .env_remove("VERIFY_NOW");
        if let Some(n) = now {
            cmd.env("VERIFY_NOW", n.to_string());
        }
        let out = cmd.output().expect("the recipe runs");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.trim().is_empty(),
            "{} {scheme}: wrote to stderr: {stderr}",
            self.language
        );
        (stdout, out.status.success())
    }
}
