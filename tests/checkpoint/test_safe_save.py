"""mindspore_offload.save_checkpoint: MindSpore's file, but a killed or failed save never loses the old one.

The fault-injection run (tests/workers/ckpt_kill_saver.py) SIGKILLs savers at points spread over a timed save and
loads what is left after each kill. MindSpore 2.10's own save_checkpoint deletes the old file before
writing the new one; it is run the same way for the record (its losses are printed and stored with
record_property, not failed on).
"""
import errno
import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Tensor, nn  # noqa: E402

import mindspore_offload  # noqa: E402
from mindspore_offload import save_checkpoint  # noqa: E402
from mindspore_offload.safe_save import remove_stale_temporaries  # noqa: E402
from support.paths import WORKERS  # noqa: E402

KILL_MEGABYTES, KILLS = 16, 12


def params(version, size=1000):
    return [{"name": f"p{i}", "data": Tensor(np.full(size, version * 10 + i, np.float32))} for i in range(3)]


def loaded_version(path):
    loaded = ms.load_checkpoint(path)
    versions = {int(loaded[f"p{i}"].asnumpy()[0]) // 10 for i in range(3)}
    assert len(versions) == 1 and all(np.all(loaded[f"p{i}"].asnumpy() == loaded[f"p{i}"].asnumpy()[0])
                                      for i in range(3)), f"{path} mixes versions"
    return versions.pop()


def temporaries(folder):
    return sorted(n for n in os.listdir(folder) if ".saving." in n or n.endswith(".tmp"))


# ---- the fault-injection run -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kill_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kills")
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(mindspore_offload.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(WORKERS / "ckpt_kill_saver.py"), str(folder),
                           str(KILL_MEGABYTES), str(KILLS)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            results[record["saver"]] = record
    assert set(results) == {"ours", "mindspore"}, proc.stdout[-2000:] + proc.stderr[-2000:]
    return results


def test_a_kill_anywhere_leaves_the_old_or_the_new_checkpoint(kill_results):
    ours = kill_results["ours"]
    assert len(ours["states"]) == KILLS
    assert set(ours["states"]) <= {"old", "new"}, ours["states"]
    # The first kills land early in the save; without one "old" the test would not have hit a save at all.
    assert "old" in ours["states"], ours
    for left in ours["leftovers"]:
        # Each save removes the temporary of the save killed before it, so at most the latest is there.
        assert len(left) <= 1 and all(n.startswith(".ours.ckpt.saving.") for n in left), ours["leftovers"]
    assert ours["left_after_next_save"] == [] and ours["final"] == "new"


def test_mindspore_save_checkpoint_under_the_same_kills(kill_results, record_property):
    """For the record only: how often MindSpore's own save lost the file."""
    theirs, ours = kill_results["mindspore"], kill_results["ours"]
    assert len(theirs["states"]) == KILLS
    counts = {state: theirs["states"].count(state) for state in ("old", "new", "missing", "mixed")}
    record_property("mindspore_kill_states", json.dumps(counts))
    record_property("save_seconds", json.dumps({"ours": ours["save_seconds"], "mindspore": theirs["save_seconds"]}))
    print(f"\nmindspore.save_checkpoint, {KILLS} SIGKILLs over a {theirs['save_seconds']:.3f} s save of "
          f"{KILL_MEGABYTES} MB: {counts}; mindspore_offload.save_checkpoint ({ours['save_seconds']:.3f} s): "
          f"{ {s: ours['states'].count(s) for s in ('old', 'new', 'missing', 'mixed')} }")


# ---- the same file as MindSpore's ----------------------------------------------------------------------

def test_the_file_is_byte_for_byte_mindspores(tmp_path):
    net = nn.SequentialCell(nn.Dense(5, 4), nn.ReLU(), nn.Dense(4, 2))
    ours = save_checkpoint(net, str(tmp_path / "ours"), append_dict={"epoch_num": 3, "note": "x"})
    ms.save_checkpoint(net, str(tmp_path / "theirs"), append_dict={"epoch_num": 3, "note": "x"})
    assert ours == str(tmp_path / "ours.ckpt")  # MindSpore's suffix rule
    assert (tmp_path / "ours.ckpt").read_bytes() == (tmp_path / "theirs.ckpt").read_bytes()
    assert os.stat(ours).st_mode & 0o777 == os.stat(tmp_path / "theirs.ckpt").st_mode & 0o777
    assert temporaries(tmp_path) == []


def test_choice_func_crc_and_safetensors_pass_through(tmp_path):
    net = nn.Dense(3, 2)
    path = save_checkpoint(net, str(tmp_path / "w.ckpt"), choice_func=lambda name: name == "weight", crc_check=True)
    assert list(ms.load_checkpoint(path, crc_check=True)) == ["weight"]
    path = save_checkpoint(net, str(tmp_path / "w"), format="safetensors")
    assert path.endswith("w.safetensors")
    np.testing.assert_array_equal(ms.load_checkpoint(path, format="safetensors")["bias"].asnumpy(), net.bias.asnumpy())


def test_a_save_replaces_an_existing_read_only_checkpoint(tmp_path):
    path = str(tmp_path / "c.ckpt")
    save_checkpoint(params(1), path)
    save_checkpoint(params(2), path)  # MindSpore leaves files read-only (0o400); replacing must still work
    assert loaded_version(path) == 2


ERRORS = [
    (dict(save_obj=3), TypeError, "'save_obj' must be nn.Cell, list or dict"),
    (dict(ckpt_file_name=7), TypeError, "'ckpt_file_name' must be string"),
    (dict(format="npz"), ValueError, "the format must be 'safetensors' or 'ckpt', but got npz"),
    (dict(async_save=True), ValueError, "does not support 'async_save' \\(True\\)"),
    (dict(async_save="thread"), ValueError, "does not support 'async_save' \\('thread'\\)"),
    (dict(async_save="process"), ValueError, "does not support 'async_save' \\('process'\\)"),
    (dict(async_save=1), TypeError, "'async_save' must be bool or str"),
]


@pytest.mark.parametrize("change, error, message", ERRORS)
def test_errors(tmp_path, change, error, message):
    path = str(tmp_path / "c.ckpt")
    save_checkpoint(params(1), path)
    args = dict(save_obj=params(2), ckpt_file_name=path)
    args.update(change)
    with pytest.raises(error, match=message):
        save_checkpoint(**args)
    assert loaded_version(path) == 1 and temporaries(tmp_path) == []


def test_a_directory_name_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save_checkpoint(params(1), str(tmp_path))


def test_aiturbo_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("AITURBO", "1")
    with pytest.raises(ValueError, match="AITURBO=1"):
        save_checkpoint(params(1), str(tmp_path / "c.ckpt"))
    assert os.listdir(tmp_path) == []


# ---- temporaries left by killed saves --------------------------------------------------------------------

def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_saves_temporary_is_removed_and_a_live_ones_is_kept(tmp_path):
    path = str(tmp_path / "c.ckpt")
    save_checkpoint(params(1), path)
    import socket

    host = socket.gethostname()
    stale = tmp_path / f".c.ckpt.saving.{host}.{dead_pid()}.0badf00d.ckpt"
    stale_ms = tmp_path / f".c.ckpt.saving.{host}.{dead_pid()}.0badf00d.tmp"  # MindSpore's own first name
    live = tmp_path / f".c.ckpt.saving.{host}.1.0badf00d.ckpt"  # pid 1 is alive: maybe a save in flight
    other_host = tmp_path / f".c.ckpt.saving.elsewhere.{dead_pid()}.0badf00d.ckpt"
    for f in (stale, stale_ms, live, other_host):
        f.write_bytes(b"torn")
    assert loaded_version(path) == 1  # the temporaries do not shadow the checkpoint
    save_checkpoint(params(2), path)
    assert loaded_version(path) == 2
    assert not stale.exists() and not stale_ms.exists()
    assert live.exists() and other_host.exists()
    assert remove_stale_temporaries(path) == []


# ---- disk full and unwritable directories (in a forked child, whose limits and user do not leak) -------

def error_record(error):
    return {"errno": getattr(error, "errno", None), "type": type(error).__name__, "message": str(error)}


def in_child(body, timeout=60):
    """Runs body() in a forked child and returns the dict it returns (or its exception's record)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            result = body()
        except BaseException as error:  # noqa: BLE001
            result = error_record(error)
        try:
            os.write(write_end, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the saving child did not finish in {timeout} s")
        time.sleep(0.05)
    with os.fdopen(read_end) as f:
        return json.loads(f.read() or "{}")


def save_in_child(prepare, save_args):
    """prepare() then save_checkpoint(*save_args) in a forked child: the error's record, or 'no error'."""
    def body():
        prepare()
        save_checkpoint(*save_args)
        return {"errno": None, "type": None, "message": "no error"}
    return in_child(body)


def test_a_full_disk_is_refused_and_the_old_checkpoint_kept(tmp_path):
    path = str(tmp_path / "c.ckpt")
    save_checkpoint(params(1, size=100), path)
    old_bytes = pathlib.Path(path).read_bytes()

    def limit_file_size():  # writes past 64 KiB fail with EFBIG, as a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = save_in_child(limit_file_size, (params(2, size=100_000), path))
    assert result["errno"] == errno.EFBIG, result
    assert "could not be written" in result["message"] and "still holds the previous checkpoint" in result["message"]
    assert pathlib.Path(path).read_bytes() == old_bytes and temporaries(tmp_path) == []


def test_an_unwritable_directory_is_refused_and_the_old_checkpoint_kept(tmp_path):
    import tempfile

    # tmp_path's parents are private to root; a folder in the system temp dir can be entered by anyone.
    folder = tempfile.mkdtemp(prefix="mso-readonly-")
    try:
        path = os.path.join(folder, "c.ckpt")
        save_checkpoint(params(1), path)
        os.chmod(path, 0o444)
        old_bytes = pathlib.Path(path).read_bytes()
        if os.geteuid() == 0:
            # chmod does not stop root, so the child gives up root for 'nobody', to whom the folder
            # (root's, mode 0755) is read-only.
            def prepare():
                os.setgid(65534)
                os.setuid(65534)
        else:
            os.chmod(folder, 0o555)

            def prepare():
                pass
        result = save_in_child(prepare, (params(2), path))
        assert result["errno"] in (errno.EACCES, errno.EPERM), result
        assert "not writable" in result["message"], result
        assert pathlib.Path(path).read_bytes() == old_bytes and temporaries(folder) == []
    finally:
        os.chmod(folder, 0o755)
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)


def test_a_full_and_then_read_only_tmpfs(tmp_path):
    """A real full disk (ENOSPC) and read-only file system (EROFS): a 256 KiB tmpfs mounted in a private
    mount namespace of a forked child (needs CAP_SYS_ADMIN, e.g. root in a container that allows it)."""
    import ctypes

    folder = str(tmp_path / "small")
    os.mkdir(folder)
    path = os.path.join(folder, "c.ckpt")

    def body():
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newns, ms_rdonly, ms_remount, ms_rec, ms_private = 0x20000, 1, 32, 0x4000, 1 << 18
        if libc.unshare(clone_newns) != 0 or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 \
                or libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"size=256k") != 0:
            return {"unavailable": os.strerror(ctypes.get_errno())}
        save_checkpoint(params(1), path)
        old_bytes = pathlib.Path(path).read_bytes()
        result = {}
        try:
            save_checkpoint(params(2, size=100_000), path)  # 1.2 MB into 256 KiB
        except OSError as error:
            result["full"] = error_record(error)
        result["full_kept"] = pathlib.Path(path).read_bytes() == old_bytes and temporaries(folder) == []
        if libc.mount(b"tmpfs", folder.encode(), None, ms_remount | ms_rdonly, b"size=256k") != 0:
            return {"unavailable": "remount read-only: " + os.strerror(ctypes.get_errno())}
        try:
            save_checkpoint(params(2), path)
        except OSError as error:
            result["read_only"] = error_record(error)
        result["read_only_kept"] = pathlib.Path(path).read_bytes() == old_bytes and loaded_version(path) == 1
        return result

    result = in_child(body)
    if "unavailable" in result:
        pytest.skip(f"cannot mount a tmpfs here ({result['unavailable']}); "
                    f"the RLIMIT_FSIZE and unwritable-folder tests cover these errors")
    assert result["full"]["errno"] == errno.ENOSPC and "the disk is full" in result["full"]["message"], result
    assert result["full_kept"], result
    assert result["read_only"]["errno"] == errno.EROFS and "read-only" in result["read_only"]["message"], result
    assert result["read_only_kept"], result


# ---- long file names: every name MindSpore's save accepts, and the one it refuses ---------------------

# Names up to the file system's 255-byte limit, with and without the suffix MindSpore appends, and one of
# two-byte characters (255 bytes in 130 characters).
LONG_NAMES = ["c" * 230 + ".ckpt", "c" * 245 + ".ckpt", "c" * 250 + ".ckpt", "c" * 250, "\u00e9" * 125 + ".ckpt"]


def name_id(name):
    return (f"{len(name.encode())}-bytes" + ("" if name.isascii() else "-utf8")
            + ("" if name.endswith(".ckpt") else "-no-suffix"))


@pytest.mark.parametrize("name", LONG_NAMES, ids=name_id)
def test_a_long_name_mindspore_accepts_saves_and_loads(tmp_path, name):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    ms.save_checkpoint(params(1), str(theirs / name))  # MindSpore's own save takes the name
    path = str(tmp_path / name)
    written = save_checkpoint(params(1), path)
    assert written == os.path.join(str(tmp_path), name if name.endswith(".ckpt") else name + ".ckpt")
    assert len(os.path.basename(written).encode()) <= 255
    save_checkpoint(params(2), path)  # and replaces it
    assert loaded_version(written) == 2
    assert [n for n in os.listdir(tmp_path) if n != "theirs"] == [os.path.basename(written)]


@pytest.mark.parametrize("name", ["c" * 251 + ".ckpt", "c" * 251, "\u00e9" * 126 + ".ckpt"], ids=name_id)
def test_a_name_mindspore_refuses_is_refused_the_same_way(tmp_path, name):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    with pytest.raises(OSError) as mindspore_error:
        ms.save_checkpoint(params(1), str(theirs / name))
    assert mindspore_error.value.errno == errno.ENAMETOOLONG
    ours = tmp_path / "ours"
    ours.mkdir()
    with pytest.raises(OSError) as our_error:
        save_checkpoint(params(1), str(ours / name))
    assert our_error.value.errno == errno.ENAMETOOLONG
    message = str(our_error.value)
    assert "longer than the 255 bytes" in message and "Choose a shorter file name" in message, message
    assert "disk" not in message and "Free space" not in message, message
    assert os.listdir(ours) == []  # refused before anything was written


# What each errno is said to be, and what the user is told to do about it (no advice to free space unless
# space is what ran out).
ADVICE = [
    (errno.ENOSPC, "the disk is full", "Free space"),
    (errno.EDQUOT, "the disk quota is exceeded", "Free space"),
    (errno.EFBIG, "the file is larger than this process may write", "Raise the file-size limit"),
    (errno.EACCES, "the directory is not writable", "Choose a writable directory"),
    (errno.EPERM, "the directory is not writable", "Choose a writable directory"),
    (errno.EROFS, "the file system is read-only", "Choose a directory on a writable file system"),
    (errno.ENAMETOOLONG, "the file name is too long", "Choose a shorter file name"),
    (errno.EIO, os.strerror(errno.EIO), "save again"),
]


@pytest.mark.parametrize("number, cause, advice", ADVICE, ids=[errno.errorcode[a[0]] for a in ADVICE])
def test_the_advice_matches_the_error(number, cause, advice):
    from mindspore_offload.safe_save import _write_failed

    wrapped = _write_failed(OSError(number, os.strerror(number)), "/somewhere/c.ckpt")
    assert isinstance(wrapped, OSError) and wrapped.errno == number
    message = str(wrapped)
    assert f"'/somewhere/c.ckpt' could not be written: {cause}" in message, message
    assert advice in message and "still holds the previous checkpoint" in message, message
    if number not in (errno.ENOSPC, errno.EDQUOT):
        assert "Free space" not in message and "disk is full" not in message, message


def test_a_killed_saves_temporary_of_a_long_name_is_removed(tmp_path):
    """A long name's temporary takes a short hashed form; killed saves' temporaries of that form, and of the
    full form older versions wrote for names that still fit, are removed, this host's live ones kept."""
    import socket

    from mindspore_offload import safe_save

    host = socket.gethostname()
    for length in (160, 250):
        name = "c" * (length - 5) + ".ckpt"
        path = str(tmp_path / name)
        save_checkpoint(params(1), path)
        ours = os.path.basename(safe_save._temp_path(path, "ckpt"))
        assert len(ours.encode()) <= 255 and ".saving." in ours and ours.startswith("." + "c" * 20)
        form = ours[:ours.index(".saving.") + len(".saving.")]  # '.<head>~<hash>.saving.'
        stale = [tmp_path / f"{form}{host}.{dead_pid()}.0badf00d.ckpt",
                 tmp_path / f"{form}{host}.{dead_pid()}.0badf00d.tmp"]  # MindSpore's own first name
        kept = [tmp_path / f"{form}{host}.1.0badf00d.ckpt",  # pid 1 is alive: maybe a save in flight
                tmp_path / f"{form}elsewhere.{dead_pid()}.0badf00d.ckpt"]
        if length == 160:  # the form older versions used, where it fits
            stale.append(tmp_path / f".{name}.saving.{host}.{dead_pid()}.0badf00d.ckpt")
        for f in stale + kept:
            f.write_bytes(b"torn")
        save_checkpoint(params(2), path)
        assert loaded_version(path) == 2
        assert [f.name for f in stale if f.exists()] == []
        assert all(f.exists() for f in kept)
        for f in kept:
            f.unlink()
        assert remove_stale_temporaries(path) == []
