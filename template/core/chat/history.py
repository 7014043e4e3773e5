"""The conversation of each profile, kept in the database."""

import json
from functools import lru_cache

from core.config import ROOT, SETTINGS

SYSTEM_PROMPT = ROOT / "prompts" / "system.md"  # fork-owned: the fork words its assistant there


def system_prompt() -> str:
    "The fork's system prompt; the file is read again only once it changed."
    try: return prompt_text(SYSTEM_PROMPT, SYSTEM_PROMPT.stat().st_mtime_ns)
    except FileNotFoundError: return ""


@lru_cache(maxsize=1)
def prompt_text(path, mtime_ns: int) -> str: return path.read_text().strip()


class History:
    """Each profile's messages (role user, assistant, note, or tool: a tool that ran, as JSON), oldest first;
    `chat_history_limit` of them at most."""

    def __init__(self, db):
        self.table = db.t.chat_message
        self.table.create(id=int, profile_id=int, role=str, content=str, stopped=bool, pk="id", transform=True,
                          if_not_exists=True)

    def __call__(self, profile: int) -> list[dict]:
        return self.table(where="profile_id = ?", where_args=[profile], order_by="id")

    def remember(self, profile: int, role: str, content: str, stopped: bool = False):
        "Saves a message and drops the profile's oldest past the history limit."
        self.table.insert(profile_id=profile, role=role, content=content, stopped=stopped)
        self.table.delete_where(
            "profile_id = ? AND id NOT IN (SELECT id FROM chat_message WHERE profile_id = ? ORDER BY id DESC LIMIT ?)",
            [profile, profile, SETTINGS["chat_history_limit"]])

    def forget(self, profile: int):
        self.table.delete_where("profile_id = ?", [profile])

    def for_llm(self, profile: int, request: str) -> list[dict]:
        """What the LLM sees: the system prompt, the history with notes as user lines, then the request.
        Runs of one role are merged, since some chat templates insist that user and assistant alternate."""
        system = system_prompt()
        turns = [{"role": "system", "content": system}] if system else []
        lines = [(m["role"], m["content"]) for m in self(profile)] + [("user", request)]
        for role, content in lines:
            if role == "note": role, content = "user", f"Note: {content}"
            if role == "tool": role, content = "user", f"Note: you used the tool {used(content)}"
            if turns and turns[-1]["role"] == role: turns[-1]["content"] += f"\n\n{content}"
            else: turns.append({"role": role, "content": content})
        return turns

    def as_markdown(self, profile: int, title: str) -> str:
        "The conversation as a Markdown document: a section per message, notes as quotes."
        parts = [f"# {title}"]
        for m in self(profile):
            if m["role"] == "note": parts.append(f"> Note: {m['content']}")
            elif m["role"] == "tool": parts.append(f"> Used the tool {used(m['content'])}")
            else: parts += [f"## {'You' if m['role'] == 'user' else 'Assistant'}", m["content"]]
            if m["stopped"]: parts.append("*(stopped)*")
        return "\n\n".join(parts) + "\n"


def used(tool_json: str) -> str:
    "A tool that ran, as the history keeps it, in a line: its name and arguments."
    tool = json.loads(tool_json)
    return f"{tool['name']} {json.dumps(tool['arguments'], ensure_ascii=False)}"
