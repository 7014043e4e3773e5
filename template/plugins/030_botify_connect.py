"""Connect Botify: the API token the Botify apps use.

A pasted token is checked against the Botify API (GET /v1/authentication/profile) and kept only if Botify takes
it, in botify_token.txt (mode 0600, gitignored; see botify.py). The page shows it masked; it is never logged.
"""

from fasthtml.common import *

from core.botify import Botify, BotifyAuthError, BotifyError, delete_token, load_token, masked, save_token

NAME = "botify_connect"
DISPLAY_NAME = "Connect Botify"
MAX_TOKEN = 200


def account(token: str, username: str | None):
    return Div(P("Connected to Botify", Span(" as ", Strong(username)) if username else None,
                 " with the token ", Code(masked(token)), "."),
               Div(A("Export a crawl", href="/botify_export", role="button"), " ",
                   Button("Disconnect", hx_delete=f"/{NAME}", hx_target="#botify-account", hx_swap="outerHTML",
                          hx_confirm="Forget the Botify token? The Botify apps need it to work.",
                          cls="outline secondary")),
               id="botify-account")


def token_form():
    return Div(Form(Input(type="password", name="token", placeholder="Paste your Botify API token",
                          aria_label="Botify API token", autocomplete="off", maxlength=MAX_TOKEN, required=True),
                    Button("Connect"), role="group", hx_post=f"/{NAME}", hx_target="#botify-account",
                    hx_swap="outerHTML", hx_disabled_elt="find button"),
               P(Small("Your token is on your Botify account page (",
                       A("app.botify.com/account", href="https://app.botify.com/account", target="_blank",
                         rel="noopener noreferrer"),
                       "). It stays on this machine, readable by you alone.")),
               id="botify-account")


def setup(plugin):
    @plugin.page
    def view():
        token = load_token()
        return (Hgroup(H1("Connect Botify"), P("The Botify apps call the Botify API with your API token.")),
                account(token, plugin.store.get("botify_username")) if token else token_form())

    @plugin.route("", methods="post")
    async def connect(token: str):
        token = token.strip()
        if not token: raise plugin.Refused(422, "Paste your Botify API token first.")
        if len(token) > MAX_TOKEN or not token.isprintable() or " " in token:
            raise plugin.Refused(422, "That is not a Botify API token: it is one word of letters and digits.")
        try:
            async with Botify(token, retries=1) as api: username = await api.username()
        except BotifyAuthError as error:
            raise plugin.Refused(422, f"{error} The token was not saved.") from None
        except BotifyError as error:
            raise plugin.Refused(422, f"{error} The token was not saved: try again.") from None
        save_token(token)
        plugin.store["botify_username"] = username
        plugin.log.info("Botify token saved")
        await plugin.narrate(f"Connected to Botify as {username}.")
        return account(token, username)

    @plugin.route("", methods="delete")
    async def disconnect():
        delete_token()
        plugin.store.pop("botify_username", None)
        plugin.log.info("Botify token deleted")
        await plugin.narrate("Disconnected from Botify: the token is deleted.")
        return token_form()
