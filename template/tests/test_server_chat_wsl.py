"""Inside WSL, an Ollama that runs on Windows is out of reach at 127.0.0.1 (WSL's NAT network), although it runs:
the chat says so, and the three ways out. WSL is told apart by its kernel, faked here in a /proc/version of the
test's own; nothing listens at the address the chat is given."""

import pytest

from core.chat import LLMError, Ollama
from conftest import free_port

WSL_KERNELS = [
    "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 12.2.0, GNU ld (GNU Binutils) "
    "2.40) #1 SMP Fri Mar 29 23:14:13 UTC 2024",
    "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc version 5.4.0 (GCC) ) #1237-Microsoft Sat "
    "Sep 11 14:32:00 PST 2021",  # WSL 1
]
DEBIAN_KERNEL = ("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, "
                 "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")


async def unreachable_message(tmp_path, kernel: str | None) -> str:
    "What the chat says when Ollama is not there, on a machine whose /proc/version holds kernel (None: no such file)."
    ollama = Ollama(f"http://127.0.0.1:{free_port()}", "llama3.2", timeout=5)
    ollama.proc_version = tmp_path / "version"
    if kernel is not None: ollama.proc_version.write_text(f"{kernel}\n")
    with pytest.raises(LLMError) as error:
        async for _ in ollama.stream("llama3.2", [{"role": "user", "content": "hello?"}]): pass
    return str(error.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("kernel", WSL_KERNELS, ids=["WSL 2", "WSL 1"])
async def test_inside_wsl_the_chat_names_the_trap_and_the_ways_out(tmp_path, kernel):
    message = await unreachable_message(tmp_path, kernel)
    assert "inside WSL" in message and "127.0.0.1:11434" in message and "NAT" in message
    assert "`curl -fsSL https://ollama.com/install.sh | sh`, then `ollama run llama3.2`" in message
    assert "`networkingMode=mirrored` under [wsl2] in %UserProfile%\\.wslconfig" in message
    assert "set OLLAMA_HOST to the Windows host" in message and "OLLAMA_HOST=0.0.0.0 there" in message


@pytest.mark.asyncio
@pytest.mark.parametrize("kernel", [DEBIAN_KERNEL, None], ids=["Linux", "no /proc/version"])
async def test_elsewhere_the_chat_says_how_to_start_ollama(tmp_path, kernel):
    message = await unreachable_message(tmp_path, kernel)
    assert "`ollama serve`" in message and "OLLAMA_HOST" in message and "WSL" not in message
