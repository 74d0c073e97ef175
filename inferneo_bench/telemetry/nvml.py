"""NVML access. Everything here degrades to "unavailable, because ..." rather than raising or guessing."""

from __future__ import annotations

from typing import Any


def _init() -> tuple[Any, str | None]:
    """Import and initialise pynvml; return (module, None) or (None, reason)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # e.g. NVML_ERROR_LIBRARY_NOT_FOUND on a machine without the driver
        return None, str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a broken driver install must not crash `env`
        return None, f"NVML unavailable: {type(exc).__name__}: {exc}"
    return pynvml, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_status() -> dict[str, Any]:
    """Driver version and GPUs as NVML sees them, or the exact reason NVML cannot be used."""
    nvml, reason = _init()
    if nvml is None:
        return {"available": False, "reason": reason, "driver_version": None, "gpus": []}
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {"index": i, "name": _text(nvml.nvmlDeviceGetName(handle)), "memory_gib": round(mem.total / 2**30, 2)}
            )
        return {
            "available": True,
            "reason": None,
            "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
            "gpus": gpus,
        }
    except nvml.NVMLError as exc:
        return {"available": False, "reason": f"NVML query failed: {exc}", "driver_version": None, "gpus": []}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def cuda_device_uuid(index: int) -> str | None:
    """UUID of CUDA device `index` as torch numbers it (after CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER), in
    torch's form (no 'GPU-' prefix), or None when torch cannot say."""
    try:
        import torch

        value = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except Exception:  # noqa: BLE001 - no CUDA, or an old torch: the caller falls back to the index
        return None
    text = "" if value is None else str(value).strip()
    return text or None


def _bare_uuid(text: str) -> str:
    text = text.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def find_device(nvml: Any, cuda_index: int, cuda_uuid: str | None) -> Any:
    """NVML handle of the GPU that CUDA calls `cuda_index`.

    NVML numbers GPUs by PCI bus and ignores CUDA_VISIBLE_DEVICES; CUDA numbers the visible GPUs, fastest
    first by default. So the CUDA index names another NVML device whenever GPUs are hidden or reordered, and
    the GPU is found by its UUID instead. Without a UUID (torch could not say) the index is used as is.
    Raises LookupError (no NVML device with that UUID, e.g. a MIG instance) or nvml.NVMLError."""
    if cuda_uuid is None:
        return nvml.nvmlDeviceGetHandleByIndex(cuda_index)
    want = _bare_uuid(cuda_uuid)
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        if _bare_uuid(_text(nvml.nvmlDeviceGetUUID(handle))) == want:
            return handle
    raise LookupError(
        f"no NVML device has the UUID {cuda_uuid} of CUDA device {cuda_index} (a MIG instance, or a GPU NVML "
        "cannot see); per-GPU counters are not read rather than read from another GPU"
    )
