"""Checkpoints that survive a crash: ``save_checkpoint`` writes beside the target and renames over it.

MindSpore 2.10's ``save_checkpoint(obj, "latest.ckpt")`` deletes an existing ``latest.ckpt`` before it
writes ``latest.tmp`` and renames that into place, so a process killed in between leaves no checkpoint
at all. Here MindSpore writes the whole file under a private temporary name in the same directory; only
when that file is complete and on disk does one ``os.replace`` swap it in. A rename within a directory
is atomic on POSIX file systems, so the target holds the old or the new checkpoint, never neither.
"""
import errno
import hashlib
import os
import socket
import threading

from mindspore_offload import _env

__all__ = ["save_checkpoint"]

# Marks our temporaries: '.<target name>.saving.<host>.<pid>.<token>.<format>'. The leading dot keeps
# them out of globs and out of ModelCheckpoint's file list (which matches '<prefix>-*'). A target name too
# long for that to fit in one file name (NAME_MAX, 255 bytes on ext4, XFS, Btrfs and tmpfs) is shortened to
# its first bytes and a hash of the whole: '.<head>~<16 hex digits>.saving.<host>.<pid>.<token>.<format>'.
_TEMP_TAG = ".saving."
_FORMATS = ("ckpt", "safetensors")
_HOST_BYTES = 64  # Linux's HOST_NAME_MAX
_HASH_DIGITS = 16
# The most bytes that follow the name part: the tag, the host, the pid (Linux's pid_max is at most 2^22;
# 10 digits hold any 32-bit pid), the token and the longer format, with the dots between them.
_TAIL_BYTES = len(_TEMP_TAG) + _HOST_BYTES + 1 + 10 + 1 + 8 + 1 + len("safetensors")
# One save at a time in this process, so a temporary carrying our own pid is never one in flight.
_save_lock = threading.Lock()


def _host():
    name = os.fsencode(socket.gethostname().replace(os.sep, "_"))[:_HOST_BYTES]
    return name.decode("utf-8", "ignore") or "host"


def _name_max(folder):
    """The longest file name, in bytes, the file system holding ``folder`` takes (255 when it cannot say)."""
    try:
        return os.pathconf(folder or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _temp_prefixes(target):
    """The prefix this save gives its temporary of ``target``, and both prefixes a temporary of it may have.

    The full form ('.<name>.saving.') is used while the longest temporary still fits in one file name; it
    is also what versions before the short form wrote, so the clean-up looks for both.
    """
    folder, name = os.path.split(target)
    raw = os.fsencode(name)
    limit = _name_max(folder)
    full = "." + name + _TEMP_TAG
    head = raw[:max(0, limit - _TAIL_BYTES - 2 - _HASH_DIGITS)].decode("utf-8", "ignore")  # 2: '.' and '~'
    short = f".{head}~{hashlib.sha256(raw).hexdigest()[:_HASH_DIGITS]}{_TEMP_TAG}"
    chosen = full if len(os.fsencode(full)) - len(_TEMP_TAG) + _TAIL_BYTES <= limit else short
    return chosen, (full, short)


def _temp_path(target, fmt):
    token = os.urandom(4).hex()
    name = f"{_temp_prefixes(target)[0]}{_host()}.{os.getpid()}.{token}.{fmt}"
    return os.path.join(os.path.dirname(target), name)


def _mindspore_temp(path):
    """The name MindSpore writes first for ``path`` ('x.ckpt' -> 'x.tmp')."""
    stem, ext = os.path.splitext(path)
    return stem + ".tmp" if ext.lstrip(".") in _FORMATS else path


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to someone else
        return True
    return True


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:  # already gone, or (unwritable folder) never written: the caller's error matters
        pass


def remove_stale_temporaries(target):
    """Deletes temporaries of ``target`` left by saves that were killed.

    Only this host's are judged: one whose process is gone (or is this process, which holds the save
    lock) is stale. A live process's temporary may be a save in flight, and another host's cannot be
    judged from here, so both are left alone. Returns the paths removed.
    """
    folder, prefixes = os.path.dirname(target), _temp_prefixes(target)[1]
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None:
            continue
        fields = name[len(prefix):].rsplit(".", 3)  # host (may hold dots), pid, token, extension
        if len(fields) != 4 or fields[0] != _host() or not fields[1].isdigit():
            continue
        pid = int(fields[1])
        if pid == os.getpid() or not _process_alive(pid):
            path = os.path.join(folder, name)
            _remove_quietly(path)
            removed.append(path)
    return removed


def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_target(save_obj, ckpt_file_name, fmt):
    """The absolute file name MindSpore would write, after MindSpore's own argument checks."""
    import mindspore as ms

    if fmt not in _FORMATS:
        raise ValueError(f"For 'save_checkpoint', the format must be 'safetensors' or 'ckpt', but got {fmt}.")
    if not isinstance(save_obj, (ms.nn.Cell, list, dict)):
        raise TypeError(f"For 'save_checkpoint', the parameter 'save_obj' must be nn.Cell, list or dict, "
                        f"but got {type(save_obj)}.")
    if not isinstance(ckpt_file_name, str):
        raise TypeError(f"For 'save_checkpoint', the parameter 'ckpt_file_name' must be string, "
                        f"but got {type(ckpt_file_name)}.")
    target = os.path.realpath(ckpt_file_name)
    if os.path.isdir(target):
        raise IsADirectoryError(f"For 'save_checkpoint', the parameter 'ckpt_file_name': {target} is a "
                                f"directory, it must be a file name.")
    # MindSpore's rule, kept exactly (it tests the bare suffix, so 'xckpt' gets no '.ckpt').
    appended = ""
    if not target.endswith(fmt):
        target += "." + fmt
        appended = f" with the '.{fmt}' MindSpore appends"
    folder, name = os.path.split(target)
    size, limit = len(os.fsencode(name)), _name_max(folder)
    if size > limit:  # MindSpore writes its '.tmp' and then fails to rename it; we refuse before writing
        raise OSError(errno.ENAMETOOLONG,
                      f"For 'save_checkpoint', the file name '{name}' is {size} bytes long{appended}, longer "
                      f"than the {limit} bytes the file system allows for one name in '{folder}'. Nothing was "
                      f"written. Choose a shorter file name.")
    return target


def _refuse_unsafe_modes(async_save):
    if async_save is not False:
        if not isinstance(async_save, (bool, str)):
            raise TypeError(f"For 'save_checkpoint', the parameter 'async_save' must be bool or str, "
                            f"but got {type(async_save)}.")
        raise ValueError(f"For 'save_checkpoint', mindspore_offload's crash-safe save does not support "
                         f"'async_save' ({async_save!r}): a background write cannot promise that the file "
                         f"is complete before it replaces the old one. Pass async_save=False, or use "
                         f"mindspore.save_checkpoint for an asynchronous save without that guarantee.")
    if _env.aiturbo():
        raise ValueError("For 'save_checkpoint', mindspore_offload's crash-safe save cannot be used with "
                         "AITURBO=1: MindSpore then hands the checkpoint to aiturbo instead of writing the "
                         "file. Unset AITURBO, or use mindspore.save_checkpoint.")
    from mindspore.train import serialization

    getattr(serialization, "_ensure_ckpt_fs_initialized", lambda: None)()
    backend = getattr(getattr(serialization, "_ckpt_fs", None), "backend", None)
    if backend == "mindio":
        raise ValueError("For 'save_checkpoint', mindspore_offload's crash-safe save needs a POSIX file "
                         "system, but MindSpore's checkpoint file system is 'mindio'. Use "
                         "mindspore.save_checkpoint there.")


# For each error a write may meet: what it means, and what to do before saving again.
_CAUSES = {
    errno.ENOSPC: ("the disk is full", "Free space on that file system or choose another"),
    errno.EDQUOT: ("the disk quota is exceeded", "Free space within the quota or choose another file system"),
    errno.EFBIG: ("the file is larger than this process may write (RLIMIT_FSIZE)",
                  "Raise the file-size limit (ulimit -f)"),
    errno.EACCES: ("the directory is not writable", "Choose a writable directory or change its permissions"),
    errno.EPERM: ("the directory is not writable", "Choose a writable directory or change its permissions"),
    errno.EROFS: ("the file system is read-only", "Choose a directory on a writable file system"),
    errno.ENAMETOOLONG: ("the file name is too long for this file system", "Choose a shorter file name"),
}


def _write_failed(error, target):
    """``error`` re-raised with what failed, what to do, and that the old checkpoint is untouched."""
    if not isinstance(error, OSError) or error.errno is None:
        return error
    cause, advice = _CAUSES.get(error.errno, (error.strerror, "Remove the cause"))
    message = (f"For 'save_checkpoint', the checkpoint '{target}' could not be written: {cause}. "
               f"Nothing was replaced or deleted: the file there (if any) still holds the previous "
               f"checkpoint. {advice} and save again.")
    return type(error)(error.errno, message)


def save_replacing(save_obj, target, fmt, previous=None, **mindspore_args):
    """Writes ``save_obj`` to ``target`` atomically; ``previous``, if given, receives the old file."""
    folder = os.path.dirname(target)
    with _save_lock:
        remove_stale_temporaries(target)
        temp = _temp_path(target, fmt)
        try:
            import mindspore as ms

            ms.save_checkpoint(save_obj, temp, format=fmt, **mindspore_args)
            if not os.path.isfile(temp):  # MindSpore logs a warning and returns when its .tmp vanished
                raise RuntimeError(f"For 'save_checkpoint', MindSpore did not leave the file it was asked "
                                   f"to write ('{temp}'); was another process removing files in "
                                   f"'{folder}'? '{target}' is unchanged.")
            _fsync_path(temp)
            if previous is not None and os.path.exists(target):
                # If killed between these two renames, 'previous' holds the old checkpoint and the new
                # one is in a temporary: the resume helpers look at both names.
                os.replace(target, previous)
            os.replace(temp, target)
            _fsync_path(folder, directory=True)
        except BaseException as error:
            _remove_quietly(temp)
            _remove_quietly(_mindspore_temp(temp))
            wrapped = _write_failed(error, target)
            if wrapped is error:
                raise
            raise wrapped from error
    return target


def save_checkpoint(save_obj, ckpt_file_name, integrated_save=True, async_save=False, append_dict=None,
                    enc_key=None, enc_mode="AES-GCM", choice_func=None, crc_check=False, format="ckpt",
                    **kwargs):
    """Saves a checkpoint like ``mindspore.save_checkpoint``, but a crash never leaves the file missing.

    The arguments, the file and its name (``'.ckpt'`` or ``'.safetensors'`` appended when the name lacks
    it) are MindSpore's; MindSpore itself writes the bytes, so ``mindspore.load_checkpoint``,
    ``load_param_into_net`` and :func:`load_param_into_net_checked` read it as before. What differs is the
    order: the new checkpoint is written in full to a hidden temporary in the same directory
    (``.<name>.saving.<host>.<pid>.<token>.<format>``, or ``.<head>~<hash>.saving.<host>.<pid>.<token>.<format>``
    where the name is too long for that to fit in one file name), flushed to disk, and then renamed over
    ``ckpt_file_name``, and the directory is flushed. If the process dies at any point, the file holds
    the complete old or the complete new checkpoint. A temporary left by a killed save never carries the
    checkpoint's name, and the next save to the same name removes it.

    Args:
        save_obj (Union[Cell, list, dict]): what to save, as for ``mindspore.save_checkpoint``: a cell
            (e.g. ``model.train_network``, which includes the optimizer's moments and step), a list of
            parameters or of ``{"name": ..., "data": ...}`` dicts, or a dict from ``load_checkpoint``.
        ckpt_file_name (str): the checkpoint file; an existing file is replaced.
        integrated_save, append_dict, enc_key, enc_mode, choice_func, crc_check, format, kwargs: passed to
            ``mindspore.save_checkpoint`` unchanged.
        async_save (bool): must be ``False``: a background save cannot promise a complete file before it
            replaces the old one.

    Returns:
        str, the absolute path written (with the suffix MindSpore adds).

    Raises:
        TypeError: ``save_obj``, ``ckpt_file_name`` or ``async_save`` has the wrong type.
        ValueError: ``format`` is not 'ckpt' or 'safetensors', ``async_save`` is not ``False``, or
            MindSpore is set to write elsewhere than a plain file (``AITURBO=1``, the mindio backend).
        IsADirectoryError: ``ckpt_file_name`` is a directory.
        OSError: the directory is not writable, the disk is full, or (``errno.ENAMETOOLONG``) the file name
            is longer than the file system allows; nothing was deleted or replaced.
    """
    target = check_target(save_obj, ckpt_file_name, format)
    _refuse_unsafe_modes(async_save)
    return save_replacing(save_obj, target, format, integrated_save=integrated_save, async_save=False,
                          append_dict=append_dict, enc_key=enc_key, enc_mode=enc_mode, choice_func=choice_func,
                          crc_check=crc_check, **kwargs)
