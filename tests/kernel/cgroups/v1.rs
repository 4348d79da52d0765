//! An agent cannot write anything in a cgroup v1 hierarchy the host mounted.

use super::*;

/// Where the cgroup v1 test mounts its hierarchy (outside the scratch directories, which
/// tests remove wholesale).
const V1_MOUNT: &str = "/tmp/governor-test-cgroup-v1";

/// A named cgroup v1 hierarchy with no controllers, mounted by the host; on drop its child
/// cgroups are removed and it is unmounted, failure or not.
struct V1Hierarchy {
    root: PathBuf,
    children: Vec<PathBuf>,
}

impl V1Hierarchy {
    fn mount() -> V1Hierarchy {
        let root = PathBuf::from(V1_MOUNT);
        // Left mounted by an interrupted run: start over.
        let _ = as_host(&["umount", V1_MOUNT]);
        std::fs::create_dir_all(&root).expect("mkdir the v1 mountpoint");
        let out = as_host(&[
            "mount",
            "-t",
            "cgroup",
            "-o",
            "none,name=govtest",
            "cgroup",
            V1_MOUNT,
        ]);
        assert!(
            out.status.success(),
            "this test needs a kernel that can mount a cgroup v1 hierarchy \
             (`mount -t cgroup -o none,name=govtest cgroup {V1_MOUNT}` failed: {} {:?})",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        V1Hierarchy {
            root,
            children: Vec::new(),
        }
    }
}

impl Drop for V1Hierarchy {
    fn drop(&mut self) {
        for c in self.children.iter().rev() {
            let _ = std::fs::remove_dir(c);
        }
        let _ = as_host(&["umount", V1_MOUNT]);
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// The line of `/proc/PID/cgroup` for the `govtest` v1 hierarchy (`N:name=govtest:/PATH`).
fn v1_line(pid: u32) -> String {
    let file = format!("/proc/{pid}/cgroup");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .lines()
        .find(|l| l.contains(":name=govtest:"))
        .unwrap_or_else(|| panic!("{file} names no govtest hierarchy"))
        .to_owned()
}

#[test]
fn lsm_agent_cannot_write_cgroup_v1_hierarchies() {
    require_bpf_lsm();
    let dir = scratch("cg-v1");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("control.py"), CONTROL);
    write(&dir.join("hand.py"), HAND);
    let script = dir.join("control.py");
    let agent = "cg-v1";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    // Declared before the sleeper: dropped after it, once its cgroups are empty.
    let mut v1 = V1Hierarchy::mount();
    let root = v1.root.clone();
    let child = root.join("child");
    let made = root.join("made");
    v1.children.extend([child.clone(), made.clone()]);
    std::fs::create_dir(&child).expect("mkdir a v1 cgroup as the host");
    let sleeper = Reaped(
        Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = sleeper.0.id();
    let before = v1_line(pid);
    assert!(before.ends_with(":name=govtest:/"), "{before}");
    let w = |p: &Path, file: &str, v: &str| format!("w:{}:{v}", p.join(file).display());
    let on = |op: &str, p: &Path| format!("{op}:{}", p.display());
    let fd = |n: usize, v: &str| format!("fd:{}:{v}", 20 + n);
    let pid_s = pid.to_string();

    // The agent (root) may read, but not make or remove cgroups, move any task (the sleeper
    // here) or write any other file, whether it opens the file or is handed a descriptor.
    let mark = d.mark();
    let handed = [
        child.join("cgroup.procs"),
        child.join("tasks"),
        child.join("notify_on_release"),
    ];
    let ops = [
        (on("r", &child.join("cgroup.procs")), "ok"),
        (on("r", &root.join("tasks")), "ok"),
        (on("mkdir", &made), "EPERM"),
        (on("rmdir", &child), "EPERM"),
        (w(&child, "cgroup.procs", &pid_s), "open-EPERM"),
        (w(&child, "tasks", &pid_s), "open-EPERM"),
        (w(&child, "notify_on_release", "1"), "open-EPERM"),
        (fd(0, &pid_s), "write-EPERM"),
        (fd(1, &pid_s), "write-EPERM"),
        (fd(2, "1"), "write-EPERM"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, Some(agent), &script, &handed, &ops);
    assert_eq!(v1_line(pid), before, "the sleeper was not moved");
    assert!(child.exists() && !made.exists());
    assert_eq!(read(&child.join("notify_on_release")), "0");
    let events = decisions_since(&d, mark, 8);
    assert_eq!(events.len(), 8, "{events:#?}");
    for ev in &events {
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
    }
    let count = |class: &str, name: &str, cgroup: &Path| {
        let what = format!("cgroup v1 id {}", id(cgroup));
        events
            .iter()
            .filter(|v| v["class"] == class && v["name"] == name && v["what"] == what)
            .count()
    };
    // mkdir and rmdir write the hierarchy's root directory (its name is empty).
    assert_eq!(count("cgroup-control", "", &root), 2, "{events:#?}");
    assert_eq!(
        count("cgroup-escape", "cgroup.procs", &child),
        2,
        "{events:#?}"
    );
    assert_eq!(count("cgroup-escape", "tasks", &child), 2, "{events:#?}");
    assert_eq!(
        count("cgroup-control", "notify_on_release", &child),
        2,
        "{events:#?}"
    );

    // A non-agent does all of it.
    let mark = d.mark();
    let ops = [
        (on("mkdir", &made), "ok"),
        (on("rmdir", &made), "ok"),
        (fd(0, &pid_s), "ok"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, None, &script, &handed[..1], &ops);
    assert!(
        v1_line(pid).ends_with(":name=govtest:/child"),
        "{}",
        v1_line(pid)
    );
    control(
        &d,
        None,
        &script,
        &[(w(&root, "cgroup.procs", &pid_s), "ok")],
    );
    assert_eq!(v1_line(pid), before);
    d.none_since(mark, "non-agent v1 writes");
}
