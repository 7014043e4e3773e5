"""The chat panel: a local LLM streamed over a WebSocket, one conversation per profile.

The page's panel opens /ws with htmx's WebSocket extension and sends JSON frames with a `msg` field. The server
asks the LLM with `stream: true` and forwards the reply as it arrives: what came in while the previous frame was
being sent goes out in the next one, so a local model's tokens show one by one and a fast server's in a few frames.
The finished reply is swapped in whole and marked `done`.

Replies are Markdown (headings, lists, emphasis, links, tables, fenced code), rendered by markdown-it-py and then
sanitised by nh3: LLM output is untrusted. Raw HTML shows as text, links go to http(s), mailto or relative
addresses only, and an image becomes a link to it, so a reply never makes the page load anything from another
host. While a reply streams, the text so far is rendered as it grows: at most every RENDER_EVERY seconds (less
often for a long reply, whose rendering costs more) the Markdown so far replaces what is shown, and the text that
arrived since is appended plain after it until the next rendering. Each finished reply has a Copy button (its
Markdown); the whole conversation downloads as Markdown (/chat/download).

While a reply is streaming, a new message is queued, not refused: it shows at once with an empty reply under it,
and its reply streams when the replies before it have finished. A profile has one generation at a time (replies
and narration comments alike), so tokens never interleave and each reply sees the ones before it. The Stop button
(POST /chat/stop) ends the streaming reply at once: its HTTP stream to the LLM is closed, what arrived is kept and
marked stopped, and the queued messages go on.

Replies go to the tab that asked; narration goes to every open tab of the profile. A generation stops, its HTTP
stream to the LLM is closed and nothing of it is kept, as soon as no tab is left to hear it.

The panel says whether the LLM answers and has the chosen model, when the page loads and whenever the model picker
is focused (GET /chat/status), in the words the errors use.

The package's rooms: backends.py (the LLM servers), history.py (each profile's conversation, kept), markdown.py
(a reply as safe HTML), panel.py (what the panel draws), streaming.py (a reply streaming to the open tabs),
conversation.py (the replies, one at a time per profile) and routes.py (class Chat: the routes and the panel).
"""

# The chat's API: server.py, the plugins and the notebooks' kernel import these from here.
from core.chat.backends import Backend, LLMError, Ollama, OpenAICompatible, backend_from_env
from core.chat.markdown import SANITISER, inline_html, markdown_html
from core.chat.routes import Chat

__all__ = ["Backend", "Chat", "LLMError", "Ollama", "OpenAICompatible", "SANITISER", "backend_from_env", "inline_html",
           "markdown_html"]
