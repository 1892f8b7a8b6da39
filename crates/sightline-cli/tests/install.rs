//! `sightline install` (the real binary): Claude Code settings merged idempotently with a backup
//! and removed cleanly; the OpenCode plugin loaded by a real `opencode serve` forwards its bus
//! events to the hub, and spools them to JSONL when the hub is down.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{TestHub, run_with_stdin};
use peers::opencode_binary;
use sightline_testkit::peers;

use common::sightline_with as sightline;

#[test]
fn claude_install_is_idempotent_keeps_user_hooks_and_uninstalls_only_ours() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    let mine = json!({"model": "opus", "permissions": {"allow": ["Bash(ls:*)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}});
    std::fs::write(&settings, serde_json::to_string_pretty(&mine).unwrap()).unwrap();
    let path = settings.to_str().unwrap();

    let (code, out) = sightline(&["install", "claude", "--settings", path], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("added hooks for") && out.contains("backup:"),
        "{out}"
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after["model"], "opus");
    assert_eq!(after["permissions"], mine["permissions"]);
    let stop = after["hooks"]["Stop"].as_array().unwrap();
    assert_eq!(
        stop.len(),
        2,
        "the user's Stop hook is kept beside ours: {after}"
    );
    let ours = after["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap();
    assert!(
        ours.ends_with(" hook") && ours.contains("sightline"),
        "{ours}"
    );
    assert_eq!(after["hooks"]["PreToolUse"][0]["matcher"], "*");
    assert_eq!(after["hooks"].as_object().unwrap().len(), 23);
    let backups = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("sightline-backup")
        })
        .count();
    assert_eq!(backups, 1);

    let (code, out) = sightline(&["install", "claude", "--settings", path], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&settings).unwrap()).unwrap(),
        after
    );

    // http hooks with a token header: SessionStart stays a command.
    let (code, _) = sightline(
        &[
            "install",
            "claude",
            "--settings",
            path,
            "--http",
            "--with-token",
            "--url",
            "http://host.docker.internal:4517",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let http: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let pre = &http["hooks"]["PreToolUse"][0]["hooks"][0];
    assert_eq!(pre["type"], "http");
    assert_eq!(
        pre["url"],
        "http://host.docker.internal:4517/api/v1/hooks/claude"
    );
    assert_eq!(pre["headers"]["Authorization"], "Bearer $SIGHTLINE_TOKEN");
    assert_eq!(
        http["hooks"]["SessionStart"][0]["hooks"][0]["type"],
        "command"
    );
    assert_eq!(
        http["hooks"]["PreToolUse"][0]["hooks"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "replaced, not added"
    );

    let (code, out) = sightline(
        &["install", "claude", "--settings", path, "--uninstall"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let back: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(back, mine, "uninstall leaves exactly the user's settings");
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> ureq::Agent {
    sightline_testkit::agent_with(Duration::from_secs(5))
}

#[test]
fn opencode_plugin_forwards_real_bus_events_and_spools_when_the_hub_is_down() {
    // Installs it on first use (or says why it cannot).
    let _ = opencode_binary();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut hub = TestHub::serve(&h.join("db.sqlite"), 0);
    let plugin = h.join(".config/opencode/plugins/sightline.js");
    let spool = h.join("spool");
    let install = || {
        let plugin = plugin.to_str().unwrap();
        let args = [
            "install",
            "opencode",
            "--settings",
            plugin,
            "--url",
            &hub.url,
        ];
        sightline(&args, &[("XDG_DATA_HOME", &h.join("data"))])
    };
    let (code, out) = install();
    assert_eq!(code, 0, "{out}");
    let (code, out) = install();
    assert!(code == 0 && out.contains("nothing changed"), "{out}");

    std::fs::write(h.join(".npmrc"), "registry=http://127.0.0.1:9/\n").unwrap();
    let port = common::free_port();
    let oc_url = format!("http://127.0.0.1:{port}");
    let _oc = Killed(
        peers::opencode_serve(h, port)
            .env("SIGHTLINE_OPENCODE_SPOOL", &spool)
            .env_remove("SIGHTLINE_URL")
            .env_remove("OPENCODE_SERVER_PASSWORD")
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        if let Ok(mut r) = http().get(&format!("{oc_url}/global/health")).call()
            && r.body_mut()
                .read_to_string()
                .unwrap_or_default()
                .contains("healthy")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "opencode serve did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let create = |title: &str| -> String {
        // The first call loads the instance and its plugins: give it time. It took 71 s in both
        // runs timed (load about 12; a wait inside OpenCode, with no child process), which left
        // a 90 s timeout 19 s for whatever a more loaded machine adds.
        let slow = sightline_testkit::agent_with(Duration::from_secs(180));
        let mut r = slow
            .post(&format!("{oc_url}/session"))
            .header("content-type", "application/json")
            .send(json!({"title": title}).to_string().as_bytes())
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let first = create("through the plugin");
    let start = Instant::now();
    while !hub
        .events()
        .iter()
        .any(|e| e["session_id"] == first.as_str() && e["source_event"] == "session.created")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the plugin did not forward session.created: {:#?}",
            hub.events()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Hub down: the plugin spools.
    hub.stop();
    let second = create("while the hub is down");
    let file = spool.join("opencode.jsonl");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains(&second) {
            let line: Value =
                serde_json::from_str(text.lines().find(|l| l.contains(&second)).unwrap()).unwrap();
            assert!(
                line["payload"]["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("session."),
                "{line}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing spooled to {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// `settings.json` may hold secrets in `env`: its mode is kept (a new one is 0600), and a
/// symlinked one (dotfiles) is written through to its target, which stays a link's target.
#[test]
fn claude_settings_keep_their_mode_and_a_symlink_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let dotfiles = dir.path().join("dotfiles");
    let claude = dir.path().join(".claude");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::create_dir_all(&claude).unwrap();
    let target = dotfiles.join("claude-settings.json");
    let mine = json!({"model": "opus", "env": {"ANTHROPIC_API_KEY": "sk-ant-api03-secret"}});
    std::fs::write(&target, serde_json::to_string_pretty(&mine).unwrap()).unwrap();
    set_mode(&target, 0o600);
    let link = claude.join("settings.json");
    std::os::unix::fs::symlink("../dotfiles/claude-settings.json", &link).unwrap();

    let (code, out) = sightline(
        &["install", "claude", "--settings", link.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link is still a link");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../dotfiles/claude-settings.json")
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(after["env"], mine["env"]);
    assert!(after["hooks"]["PreToolUse"].is_array(), "{after}");
    assert_eq!(mode(&target), 0o600, "the secrets stay private");
    assert_eq!(
        names(&dotfiles),
        vec!["claude-settings.json"],
        "no temporary file left beside the target"
    );
    let backups: Vec<String> = names(&claude)
        .into_iter()
        .filter(|n| n.contains("sightline-backup"))
        .collect();
    assert_eq!(backups.len(), 1, "{:?}", names(&claude));
    assert_eq!(
        mode(&claude.join(&backups[0])),
        0o600,
        "the backup holds the secrets too"
    );

    // Whatever mode the user chose is kept, not reset.
    set_mode(&target, 0o640);
    let (code, out) = sightline(
        &[
            "install",
            "claude",
            "--settings",
            link.to_str().unwrap(),
            "--uninstall",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(mode(&target), 0o640);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let back: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(back, mine);

    // A new settings file starts private: it is where `env` secrets go.
    let fresh = dir.path().join("new").join("settings.json");
    let (code, out) = sightline(
        &["install", "claude", "--settings", fresh.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(mode(&fresh), 0o600);
}

/// The installed hook command runs, through a real shell, from a binary whose path holds a
/// space, quotes, `$` and backquotes.
#[test]
fn the_hook_command_runs_from_any_path() {
    let root = tempfile::Builder::new()
        .prefix("it's a $HOME `id` dir")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let bin_dir = root.path().join("o'brien's \"tools\"");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("sightline");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_sightline"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_sightline"), &exe).unwrap();
    }
    let settings = root.path().join("settings.json");
    let out = Command::new(&exe)
        .args(["install", "claude", "--settings"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let installed: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let command = installed["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_string();

    let hub = TestHub::start();
    let payload = json!({"session_id": "sess-quoted", "hook_event_name": "UserPromptSubmit",
        "cwd": "/tmp", "prompt": "from a quoted path"});
    let out = run_with_stdin(
        Command::new("sh")
            .args(["-c", &command])
            .env("SIGHTLINE_URL", &hub.url)
            .env("SIGHTLINE_SPOOL_DIR", root.path().join("spool"))
            .env_remove("SIGHTLINE_TOKEN")
            .stderr(Stdio::piped()),
        payload.to_string().as_bytes(),
    );
    assert!(out.status.success(), "`{command}`: {out:?}");
    hub.wait_for("the hook's event", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["payload"]["prompt"] == "from a quoted path")
    });
    // And `install` recognises the quoted command as its own: nothing changes the second time.
    let again = Command::new(&exe)
        .args(["install", "claude", "--settings"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing changed"),
        "{again:?}"
    );
}

/// `install opencode` changes its plugin the way the other targets change theirs: through a
/// symlink to its target (the link stays a link, no temporary file left beside it), nothing the
/// second time, `--dry-run` writes nothing, a new URL keeps the replaced version as a backup,
/// and a file at that path that is not ours is refused and left as it was.
#[test]
fn opencode_plugin_install_backs_up_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let dotfiles = d.join("dotfiles");
    let plugins = d.join("plugins");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    let target = dotfiles.join("sightline.js");
    let link = plugins.join("sightline.js");
    std::os::unix::fs::symlink("../dotfiles/sightline.js", &link).unwrap();
    // The link dangles until the first install writes its target.
    let install = |path: &Path, url: &str, extra: &[&str]| {
        let mut args = vec![
            "install",
            "opencode",
            "--settings",
            path.to_str().unwrap(),
            "--url",
            url,
        ];
        args.extend_from_slice(extra);
        sightline(&args, &[("XDG_DATA_HOME", &data)])
    };
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .unwrap()
            .file_type()
            .is_symlink()
    };

    let (code, out) = install(&link, "http://127.0.0.1:7001", &[]);
    assert!(code == 0 && out.contains("installed"), "{out}");
    assert!(is_link(&link), "the link is still a link");
    let first = std::fs::read_to_string(&target).unwrap();
    assert!(first.contains("\"http://127.0.0.1:7001\""), "{first}");
    assert_eq!(names(&dotfiles), vec!["sightline.js"]);
    assert_eq!(names(&plugins), vec!["sightline.js"], "nothing to back up");

    let (code, out) = install(&link, "http://127.0.0.1:7001", &[]);
    assert!(code == 0 && out.contains("nothing changed"), "{out}");
    assert_eq!(
        names(&plugins),
        vec!["sightline.js"],
        "no backup of no change"
    );

    let (code, out) = install(&link, "http://127.0.0.1:7002", &["--dry-run"]);
    assert!(code == 0 && out.contains("would change"), "{out}");
    assert!(out.contains("\"http://127.0.0.1:7002\""), "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), first);
    assert_eq!(
        names(&plugins),
        vec!["sightline.js"],
        "a dry run writes nothing"
    );

    let (code, out) = install(&link, "http://127.0.0.1:7002", &[]);
    assert!(code == 0 && out.contains("updated"), "{out}");
    assert!(out.contains("backup: "), "{out}");
    assert!(is_link(&link), "the link is still a link");
    let second = std::fs::read_to_string(&target).unwrap();
    assert!(second.contains("\"http://127.0.0.1:7002\""), "{second}");
    assert_eq!(
        names(&dotfiles),
        vec!["sightline.js"],
        "no temporary file left beside the target"
    );
    let listed = names(&plugins);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let backup = listed
        .iter()
        .find(|n| n.starts_with("sightline.js.sightline-backup-"))
        .unwrap_or_else(|| panic!("no backup in {listed:?}"));
    // Not a `.js` name, so OpenCode does not load the backup as a second plugin.
    assert!(!backup.ends_with(".js"), "{backup}");
    assert_eq!(
        std::fs::read_to_string(plugins.join(backup)).unwrap(),
        first,
        "the backup is the replaced version"
    );

    // Someone else's plugin at that path: refused, untouched, no backup made.
    let theirs = plugins.join("theirs.js");
    std::fs::write(&theirs, "export const Theirs = async () => ({});\n").unwrap();
    let (code, out) = install(&theirs, "http://127.0.0.1:7002", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is not sightline's plugin"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&theirs).unwrap(),
        "export const Theirs = async () => ({});\n"
    );
    assert_eq!(names(&plugins).len(), 3, "{:?}", names(&plugins));
}
