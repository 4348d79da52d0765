//! Exec of listed binaries, under any name and through the loader, and fileless (memfd) exec
//! unless the agent's policy allows it.

use super::*;

#[test]
fn lsm_exec_of_a_listed_binary_under_any_name() {
    require_bpf_lsm();
    let dir = scratch("exec");
    // A listed binary on a writable filesystem, so that it can have links.
    let bin = dir.join("bin/shred");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::copy("/usr/bin/shred", &bin).expect("copy shred");
    let hardlink = dir.join("bin/wipe");
    std::fs::hard_link(&bin, &hardlink).expect("hard link");
    let symlink = dir.join("bin/via-symlink");
    std::os::unix::fs::symlink(&bin, &symlink).expect("symlink");
    let victim = dir.join("victim.txt");
    write(&victim, "precious");
    let ino = std::fs::metadata(&bin).expect("stat").ino();
    let system_shred = Path::new("/usr/bin/shred");

    let agent = "agent-exec";
    let d = Daemon::start(
        &dir,
        &policy("exec", &[A(agent, "enforce", false)], &[&bin, system_shred]),
    );
    let unchanged = || std::fs::read(&victim).expect("read victim") == b"precious";

    // The listed binary, its hard link, a symlink to it, and the system's shred: all denied.
    for (how, path, name) in [
        ("by its path", &s(&bin), "shred"),
        ("by a hard link", &s(&hardlink), "wipe"),
        ("by a symlink", &s(&symlink), "shred"),
    ] {
        let mark = d.mark();
        let out = d.as_agent(agent, &[path, "-n1", &s(&victim)]);
        assert_eperm(&out, &format!("agent exec {how}"));
        assert!(unchanged(), "victim changed after exec {how}");
        let ev = d.one_since(mark, how, |v| v["class"] == "exec");
        assert_event(&ev, agent, "exec", "deny");
        assert_eq!(ev["name"], name, "{how}: {ev}");
        assert_eq!(ev["target_ino"], ino, "{how}: {ev}");
        assert_eq!(ev["protected"], s(&bin), "{how}: {ev}");
        assert_eq!(ev["what"], "execve", "{how}: {ev}");
    }
    let mark = d.mark();
    let out = d.as_agent(agent, &["shred", "-n1", &s(&victim)]);
    assert_eperm(&out, "agent exec of /usr/bin/shred via PATH");
    assert!(unchanged());
    let ev = d.one_since(mark, "exec /usr/bin/shred", |v| v["class"] == "exec");
    assert_eq!(ev["protected"], "/usr/bin/shred");

    // Through the loader, which maps the binary itself instead of exec'ing it.
    for listed in [s(system_shred), s(&bin)] {
        let mark = d.mark();
        let out = d.as_agent(agent, &[LD_SO, &listed, "-n1", &s(&victim)]);
        assert!(!out.status.success(), "ld.so {listed} must fail: {out:?}");
        assert!(unchanged(), "victim changed after ld.so {listed}");
        let ev = d.one_since(mark, "ld.so mapping", |v| v["class"] == "exec");
        assert_eq!(ev["what"], "mmap PROT_EXEC", "{ev}");
        assert_eq!(ev["protected"], listed.as_str(), "{ev}");
        assert_eq!(ev["comm"], "ld-linux-x86-64", "{ev}");
    }

    // Mapping it readable, then making the mapping executable.
    let code = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         fd = os.open({:?}, os.O_RDONLY)\n\
         addr = libc.mmap(None, 4096, 1, 2, fd, 0)\n\
         assert addr not in (None, ctypes.c_void_p(-1).value), 'mmap PROT_READ failed'\n\
         if libc.mprotect(ctypes.c_void_p(addr), 4096, 5) != 0:\n\
         \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n",
        &s(&bin)
    );
    let mark = d.mark();
    let out = d.as_agent(agent, &python(&code));
    assert_eperm(&out, "agent mprotect PROT_EXEC of a listed binary");
    let ev = d.one_since(mark, "mprotect", |v| v["class"] == "exec");
    assert_eq!(ev["what"], "mprotect PROT_EXEC", "{ev}");
    // The same program works on an unlisted file.
    let out = d.as_agent(agent, &python(&code.replace(&s(&bin), "/usr/bin/true")));
    assert_ok(&out, "agent mprotect PROT_EXEC of an unlisted binary");

    // Unlisted binaries run; a shebang script whose interpreter is listed does not.
    let out = d.as_agent(agent, &["true"]);
    assert_ok(&out, "agent runs an unlisted binary");
    let script = dir.join("wipe.sh");
    write(&script, &format!("#!{} -n1\n", &s(&bin)));
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let before = std::fs::read(&script).expect("read script");
    let out = d.as_agent(agent, &[&s(&script)]);
    assert_eperm(&out, "agent runs a script interpreted by a listed binary");
    assert_eq!(std::fs::read(&script).expect("read"), before);

    // A plain host process runs the listed binary under any name.
    let mark = d.mark();
    let out = as_host(&[&s(&hardlink), "-n1", &s(&victim)]);
    assert_ok(&out, "host runs the listed binary");
    assert!(!unchanged(), "host shred must overwrite the victim");
    let out = as_host(&[LD_SO, "/usr/bin/true"]);
    assert_ok(&out, "host runs a binary through ld.so");
    d.none_since(mark, "host exec");
}

#[test]
fn lsm_fileless_exec_is_denied_unless_allowed() {
    require_bpf_lsm();
    let dir = scratch("fileless");
    let strict = "agent-nofileless";
    let lenient = "agent-fileless";
    let mut d = Daemon::start(
        &dir,
        &policy(
            "fileless",
            &[A(strict, "enforce", false), A(lenient, "enforce", true)],
            &[],
        ),
    );
    // A copy of `true` written to a memfd and executed through /proc/self/fd.
    let memfd_exec = "import os\n\
         fd = os.memfd_create('payload', 0)\n\
         os.write(fd, open('/usr/bin/true', 'rb').read())\n\
         os.execv(f'/proc/self/fd/{fd}', ['true'])\n";
    let mark = d.mark();
    let out = d.as_agent(strict, &python(memfd_exec));
    assert_eperm(&out, "agent memfd exec");
    let ev = d.one_since(mark, "memfd exec", |v| v["class"] == "exec");
    assert_event(&ev, strict, "exec", "deny");
    assert_eq!(ev["name"], "memfd:payload", "{ev}");
    assert_eq!(
        ev["protected"],
        "(fileless: the file has no name on any filesystem)"
    );
    assert_eq!(ev["what"], "execve");

    // Mapping memfd contents executable, as a loader would.
    let memfd_map = "import os, mmap\n\
         fd = os.memfd_create('code', 0)\n\
         os.write(fd, b'\\xc3' * 4096)\n\
         mmap.mmap(fd, 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n";
    let mark = d.mark();
    let out = d.as_agent(strict, &python(memfd_map));
    assert_eperm(&out, "agent PROT_EXEC mmap of a memfd");
    let ev = d.one_since(mark, "memfd mmap", |v| v["class"] == "exec");
    assert_eq!(ev["what"], "mmap PROT_EXEC", "{ev}");

    // Anonymous executable memory (what a JIT maps) has no file at all: not this class.
    let mark = d.mark();
    let jit =
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)";
    let out = d.as_agent(strict, &python(jit));
    assert_ok(&out, "agent anonymous PROT_EXEC mmap");
    d.none_since(mark, "anonymous mapping");

    // A file deleted while open has no name either.
    let copy = dir.join("true-copy");
    std::fs::copy("/usr/bin/true", &copy).expect("copy true");
    let deleted_exec = format!(
        "import os\n\
         fd = os.open({:?}, os.O_RDONLY)\n\
         os.unlink({:?})\n\
         os.execv(f'/proc/self/fd/{{fd}}', ['true'])\n",
        &s(&copy),
        &s(&copy)
    );
    let mark = d.mark();
    let out = d.as_agent(strict, &python(&deleted_exec));
    assert_eperm(&out, "agent exec of a deleted file");
    d.one_since(mark, "deleted exec", |v| v["class"] == "exec");

    // An agent whose policy allows it, and a plain host process, may.
    let mark = d.mark();
    let out = d.as_agent(lenient, &python(memfd_exec));
    assert_ok(&out, "allow_fileless_exec agent memfd exec");
    let out = d.as_agent(lenient, &python(memfd_map));
    assert_ok(&out, "allow_fileless_exec agent memfd mmap");
    let out = as_host(&python(memfd_exec));
    assert_ok(&out, "host memfd exec");
    d.none_since(mark, "allowed fileless exec");
    assert!(d.alive());
}
