//! Installs Debian packages without ever removing or downgrading what the machine has.
//!
//! `apt-get install -y` will happily remove an installed package to satisfy a new one (a
//! fresh machine of ours carries `qemu-utils` 10 from bookworm-backports, and bookworm's
//! `qemu-system-arm` 7.2 conflicts with it). So [`apt_install`] first asks apt what it
//! would do (`apt-get install -s`), parses the plan, and only installs when nothing would
//! be removed or downgraded. When the conflict comes from a backports package, the same
//! packages are tried again from `<codename>-backports`. apt's own output goes to a log
//! file under `target/`, shown only when apt fails; the user sees one line per package.

use std::path::Path;
use std::process::Command;

/// The sources file [`apt_install`] adds when it needs backports.
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/sgmrl-backports.sources";

/// One package apt would unpack (`Inst` line of a simulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inst {
    /// Package name (without `:arch`).
    pub name: String,
    /// Version apt would install.
    pub version: String,
    /// Version installed now, when this is an upgrade or downgrade.
    pub replaces: Option<String>,
    /// Release the version comes from, e.g. `Debian Backports:oldstable-backports`.
    pub release: String,
}

/// One installed package apt would remove (`Remv` line of a simulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remv {
    /// Package name (without `:arch`).
    pub name: String,
    /// Version installed now.
    pub version: String,
}

/// What `apt-get install -s` says it would do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Packages it would unpack, in apt's order.
    pub installs: Vec<Inst>,
    /// Installed packages it would remove.
    pub removals: Vec<Remv>,
}

fn strip_arch(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Parses the `Inst`/`Remv` lines of `apt-get install -s` output; other lines are ignored.
///
/// Formats (apt 2.6): `Inst NAME [OLD] (NEW RELEASE [ARCH]) [...]` where `[OLD]` is present
/// only for an already installed package, and `Remv NAME [OLD] [...]`.
pub fn parse_simulation(text: &str) -> Plan {
    let mut plan = Plan::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Inst ") {
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let rest = rest.trim_start();
            let (replaces, rest) = match rest.strip_prefix('[') {
                Some(r) => match r.split_once(']') {
                    Some((old, tail)) => (Some(old.to_owned()), tail.trim_start()),
                    None => (None, rest),
                },
                None => (None, rest),
            };
            let inside = rest
                .strip_prefix('(')
                .and_then(|r| r.split_once(')'))
                .map_or("", |(inside, _)| inside);
            let (version, release) = inside.split_once(' ').unwrap_or((inside, ""));
            // The release ends with the architecture in brackets.
            let release = release
                .rsplit_once(" [")
                .map_or(release, |(r, _)| r)
                .to_owned();
            plan.installs.push(Inst {
                name: strip_arch(name).to_owned(),
                version: version.to_owned(),
                replaces,
                release,
            });
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let version = rest
                .trim_start()
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map_or("", |(v, _)| v);
            plan.removals.push(Remv {
                name: strip_arch(name).to_owned(),
                version: version.to_owned(),
            });
        }
    }
    plan
}

/// True when a Debian version string is a backports build (`…~bpo12+1`).
pub fn is_backport(version: &str) -> bool {
    version.contains("~bpo")
}

/// Names listed in the `Conflicts:` and `Breaks:` fields of a package record
/// (`apt-cache show` / `dpkg-query` output), without version constraints.
pub fn conflicting_names(record: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in record.lines() {
        let Some(list) = line
            .strip_prefix("Conflicts:")
            .or_else(|| line.strip_prefix("Breaks:"))
        else {
            continue;
        };
        for item in list.split([',', '|']) {
            let name = item.trim().split([' ', '(']).next().unwrap_or("");
            let name = strip_arch(name);
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Whether `dpkg` has the package installed (fully, not just configured-files).
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with(" installed")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The distribution codename (`bookworm`), from `/etc/os-release`.
fn codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
}

/// Runs `apt-get` (through `sudo` unless root), appending its output to `log`.
/// Returns the combined output, or an error pointing at the log.
fn apt_get(args: &[&str], log: &Path) -> Result<(bool, String), String> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    // Wait for another apt/dpkg (a parallel setup) rather than fail at once.
    let out = cmd
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("cannot start apt-get: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = format!("$ apt-get {}\n{text}\n", args.join(" "));
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
    Ok((out.status.success(), text))
}

/// Last `E:` line of apt's output (its own one-line reason), if any.
fn apt_error(text: &str) -> String {
    text.lines()
        .rfind(|l| l.starts_with("E: "))
        .map_or_else(|| "apt-get failed".to_owned(), |l| l[3..].to_owned())
}

/// Why a simulated plan cannot be carried out as is; `None` when it is safe.
fn unsafe_reason(plan: &Plan) -> Option<String> {
    if !plan.removals.is_empty() {
        let culprits = culprits(plan);
        // Name the removal a declared conflict forces (the others follow from it).
        let (r, by) = plan
            .removals
            .iter()
            .find_map(|r| {
                culprits
                    .iter()
                    .find(|(name, _)| *name == r.name)
                    .map(|(_, c)| (r, format!(" ({c})")))
            })
            .or_else(|| plan.removals.first().map(|r| (r, String::new())))?;
        let others = plan.removals.len() - 1;
        let more = if others > 0 {
            format!(" and {others} more installed package(s)")
        } else {
            String::new()
        };
        return Some(format!(
            "it would remove the installed {} {}{by}{more}",
            r.name, r.version
        ));
    }
    for i in &plan.installs {
        if let Some(old) = &i.replaces
            && version_lt(&i.version, old)
        {
            return Some(format!(
                "it would downgrade the installed {} {old} to {}",
                i.name, i.version
            ));
        }
    }
    None
}

/// Splits `apt-cache show` / `dpkg-query` output into records keyed by `Package:`.
fn records(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter_map(|rec| {
            let name = rec
                .lines()
                .find_map(|l| l.strip_prefix("Package: "))?
                .trim()
                .to_owned();
            Some((name, rec.to_owned()))
        })
        .collect()
}

/// For each removal a declared `Conflicts`/`Breaks` forces (either way round), the
/// removed package's name and a phrase naming the package that forces it. Two batched
/// queries (dpkg-query for the removed, apt-cache for the new versions).
fn culprits(plan: &Plan) -> Vec<(String, String)> {
    let query = |program: &str, args: Vec<String>| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut args = vec![
        "-W".to_owned(),
        "-f=Package: ${Package}\nConflicts: ${Conflicts}\nBreaks: ${Breaks}\n\n".to_owned(),
    ];
    args.extend(plan.removals.iter().map(|r| r.name.clone()));
    let removed = records(&query("dpkg-query", args));
    let mut args = vec!["show".to_owned(), "--no-all-versions".to_owned()];
    args.extend(
        plan.installs
            .iter()
            .map(|i| format!("{}={}", i.name, i.version)),
    );
    let new = records(&query("apt-cache", args));
    let mut found = Vec::new();
    for r in &plan.removals {
        let theirs = removed
            .iter()
            .find(|(n, _)| *n == r.name)
            .map(|(_, rec)| conflicting_names(rec))
            .unwrap_or_default();
        let by = plan.installs.iter().find_map(|i| {
            if theirs.contains(&i.name) {
                return Some(format!(
                    "it conflicts with {} {}, which this install needs",
                    i.name, i.version
                ));
            }
            new.iter()
                .find(|(n, rec)| *n == i.name && conflicting_names(rec).contains(&r.name))
                .map(|_| format!("{} {} conflicts with it", i.name, i.version))
        });
        if let Some(by) = by {
            found.push((r.name.clone(), by));
        }
    }
    found
}

fn version_lt(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// Adds `<codename>-backports` to apt's sources (idempotent) and refreshes the lists.
fn enable_backports(suite: &str, log: &Path) -> Result<(), String> {
    let body = format!(
        "# Added by `cargo xtask` (sgmrl): packages that must match installed backports.\n\
         Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    let already = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.starts_with("Suites:") && l.split_whitespace().any(|s| s == suite))
                    || t.lines()
                        .any(|l| l.starts_with("deb ") && l.split_whitespace().any(|s| s == suite))
            })
        });
    if !already {
        let written = if is_root() {
            std::fs::write(BACKPORTS_SOURCES, &body).map_err(|e| e.to_string())
        } else {
            Command::new("sudo")
                .args(["sh", "-c", &format!("cat > {BACKPORTS_SOURCES}")])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    if let Some(stdin) = c.stdin.as_mut() {
                        std::io::Write::write_all(stdin, body.as_bytes())?;
                    }
                    c.wait()
                })
                .map_err(|e| e.to_string())
                .and_then(|s| s.success().then_some(()).ok_or(s.to_string()))
        };
        written.map_err(|e| format!("cannot write {BACKPORTS_SOURCES}: {e}"))?;
        eprintln!("xtask: added {suite} to apt's sources ({BACKPORTS_SOURCES})");
    }
    let (ok, text) = apt_get(&["update", "-qq"], log)?;
    if !ok {
        return Err(format!("apt-get update: {}", apt_error(&text)));
    }
    Ok(())
}

/// Simulates installing `packages` (optionally from `release`), returning the plan or the
/// reason apt gave for having none.
fn simulate(
    packages: &[&str],
    release: Option<&str>,
    log: &Path,
) -> Result<Result<Plan, String>, String> {
    let mut args = vec!["install", "-s", "--no-install-recommends"];
    if let Some(r) = release {
        args.extend(["-t", r]);
    }
    args.extend(packages);
    let (ok, text) = apt_get(&args, log)?;
    Ok(if ok {
        Ok(parse_simulation(&text))
    } else {
        Err(apt_error(&text))
    })
}

/// Installs the Debian `packages` that are missing, never removing or downgrading anything.
///
/// A quick no-op when all are installed. Prints one line per package it installs; apt's
/// output goes to `log` (shown on failure). Fails with a one-line message naming the
/// conflict when the only way apt sees would remove or downgrade an installed package.
/// With `dry_run`, stops after the simulation and says what it would install.
pub fn apt_install(packages: &[&str], log: &Path, dry_run: bool) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(log, "");
    let wanted = missing.join(" ");
    let shown_log = log.display();
    eprintln!("xtask: installing {wanted} (apt; log: {shown_log})");
    let (ok, text) = apt_get(&["update", "-qq"], log)?;
    if !ok {
        return Err(format!(
            "apt-get update: {} (see {shown_log})",
            apt_error(&text)
        ));
    }
    let first = simulate(&missing, None, log)?;
    let mut release = None;
    let plan = match &first {
        Ok(plan) if unsafe_reason(plan).is_none() => plan.clone(),
        _ => {
            // Which installed package is in the way; retry from backports when it is one.
            let reason = match &first {
                Ok(plan) => unsafe_reason(plan).unwrap_or_default(),
                Err(e) => e.clone(),
            };
            let backport_in_way = match &first {
                Ok(plan) => {
                    plan.removals.iter().any(|r| is_backport(&r.version))
                        || plan
                            .installs
                            .iter()
                            .any(|i| i.replaces.as_deref().is_some_and(is_backport))
                }
                // apt names the installed version it cannot move: "… but 1:10.0.2+ds-2…~bpo12+1 is to be installed".
                Err(_) => std::fs::read_to_string(log).is_ok_and(|t| t.contains("~bpo")),
            };
            let suite = codename().map(|c| format!("{c}-backports"));
            let retried = match (&suite, backport_in_way) {
                (Some(suite), true) => {
                    enable_backports(suite, log)?;
                    match simulate(&missing, Some(suite), log)? {
                        Ok(plan) if unsafe_reason(&plan).is_none() => Some(plan),
                        _ => None,
                    }
                }
                _ => None,
            };
            match retried {
                Some(plan) => {
                    release = suite;
                    plan
                }
                None => {
                    return Err(format!(
                        "not installing {wanted}: {reason}; nothing was changed"
                    ));
                }
            }
        }
    };
    if dry_run {
        for i in &plan.installs {
            eprintln!(
                "xtask: would install {} {} ({})",
                i.name, i.version, i.release
            );
        }
        return Ok(());
    }
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--no-remove",
    ];
    if let Some(r) = &release {
        args.extend(["-t", r.as_str()]);
    }
    args.extend(&missing);
    let (ok, text) = apt_get(&args, log)?;
    if !ok {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
        return Err(format!(
            "apt-get install {wanted}: {} (full output: {shown_log})",
            apt_error(&text)
        ));
    }
    for i in &plan.installs {
        let change = i
            .replaces
            .as_ref()
            .map_or_else(String::new, |old| format!(" (upgraded from {old})"));
        eprintln!("xtask: installed {} {}{change}", i.name, i.version);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `apt-get install -s --no-install-recommends sysvinit-core` on bookworm
    /// (shortened): removals, upgrades with `[]` tails, new packages, and `Conf` lines.
    const SYSVINIT: &str = "\
Reading package lists...
The following packages will be REMOVED:
  at-spi2-core systemd-sysv
Remv at-spi2-core [2.46.0-5]
Remv systemd-sysv [252.38-1~deb12u1]
Inst libnss-systemd [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64]) []
Inst libsystemd0 [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])
Conf libsystemd0 (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])
Inst sysvinit-core (3.06-4 Debian:12.15/oldstable [amd64])
Conf sysvinit-core (3.06-4 Debian:12.15/oldstable [amd64])
";

    #[test]
    fn parses_removals_upgrades_and_new_packages() {
        let plan = parse_simulation(SYSVINIT);
        assert_eq!(
            plan.removals,
            vec![
                Remv {
                    name: "at-spi2-core".into(),
                    version: "2.46.0-5".into()
                },
                Remv {
                    name: "systemd-sysv".into(),
                    version: "252.38-1~deb12u1".into()
                },
            ]
        );
        assert_eq!(plan.installs.len(), 3);
        assert_eq!(
            plan.installs[0],
            Inst {
                name: "libnss-systemd".into(),
                version: "252.39-1~deb12u2".into(),
                replaces: Some("252.38-1~deb12u1".into()),
                release: "Debian:12.15/oldstable".into(),
            }
        );
        assert_eq!(plan.installs[2].name, "sysvinit-core");
        assert_eq!(plan.installs[2].replaces, None);
        assert_eq!(plan.installs[2].version, "3.06-4");
    }

    /// The fresh-machine case of issue #9: bookworm's QEMU would replace backports' qemu-utils.
    #[test]
    fn backports_removal_is_recognised() {
        let text = "\
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Inst qemu-system-arm:amd64 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
";
        let plan = parse_simulation(text);
        assert_eq!(plan.removals.len(), 1);
        assert!(is_backport(&plan.removals[0].version));
        assert_eq!(plan.installs[1].name, "qemu-system-arm");
        assert!(!is_backport(&plan.installs[1].version));
        let backports = "Inst qemu-system-arm (1:10.0.2+ds-2+deb13u1~bpo12+1 \
                         Debian Backports:oldstable-backports [amd64])";
        let inst = &parse_simulation(backports).installs[0];
        assert_eq!(inst.release, "Debian Backports:oldstable-backports");
        assert_eq!(inst.version, "1:10.0.2+ds-2+deb13u1~bpo12+1");
    }

    #[test]
    fn nothing_to_do_parses_empty() {
        let text = "qemu-system-arm is already the newest version (1:10.0.2).\n\
                    0 upgraded, 0 newly installed, 0 to remove and 140 not upgraded.\n";
        assert_eq!(parse_simulation(text), Plan::default());
    }

    #[test]
    fn conflict_fields_give_bare_names() {
        let record = "Package: qemu-utils\nBreaks: qemu-system-common (<< 1:8.0), qemu-block-extra:amd64 (<< 1:8.0)\n\
                      Conflicts: foo | bar (= 1)\nDepends: baz\n";
        assert_eq!(
            conflicting_names(record),
            ["qemu-system-common", "qemu-block-extra", "foo", "bar"]
        );
        assert!(conflicting_names("Depends: qemu-system-common\n").is_empty());
    }

    #[test]
    fn records_split_by_package() {
        let text = "Package: a\nBreaks: b\n\nPackage: c\nConflicts: d\n\n";
        let recs = records(text);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].0, "c");
        assert_eq!(conflicting_names(&recs[1].1), ["d"]);
    }

    #[test]
    fn a_plan_without_removals_or_downgrades_is_safe() {
        let new_only = parse_simulation("Inst hello (2.10-3 Debian:12.15/oldstable [amd64])\n");
        assert_eq!(unsafe_reason(&new_only), None);
        let removal = parse_simulation("Remv qemu-utils [1:10.0.2~bpo12+1]\n");
        let reason = unsafe_reason(&removal).unwrap_or_default();
        assert!(
            reason.contains("remove the installed qemu-utils 1:10.0.2~bpo12+1"),
            "{reason}"
        );
        // Versions are compared by dpkg, as apt does (epochs, `~`).
        let downgrade = parse_simulation(
            "Inst qemu-utils [1:10.0.2+ds-2~bpo12+1] (1:7.2+dfsg-7 Debian:12.15/oldstable [amd64])\n",
        );
        let reason = unsafe_reason(&downgrade).unwrap_or_default();
        assert!(
            reason.contains("downgrade the installed qemu-utils"),
            "{reason}"
        );
        let upgrade = parse_simulation(
            "Inst libsystemd0 [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])\n",
        );
        assert_eq!(unsafe_reason(&upgrade), None);
    }
}
