// The chat panel's behaviour (core/chat/panel.py draws it); template-owned. Without this script the panel still
// works, only less comfortably: Enter would not send and the log would not follow the reply.
(() => {
  const log = () => document.getElementById("chat-log");

  // The panel fills the viewport below its top, so the page never grows with the conversation.
  function fit() {
    const chat = document.getElementById("chat");
    const aside = chat?.closest("aside"), workspace = aside?.parentElement;
    if (!workspace) return;
    // The aside sticks to the top as the page scrolls, so its place in the page is the workspace's; the chat sits
    // below what comes before it in the aside (the fold button).
    const above = chat.getBoundingClientRect().top - aside.getBoundingClientRect().top;
    chat.style.setProperty("--chat-top", `${workspace.getBoundingClientRect().top + scrollY + above}px`);
  }
  addEventListener("resize", fit);

  // Follow the reply as it grows, unless the person scrolled up to read; their own message always shows.
  const nearBottom = (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  let follow = true;
  const toBottom = () => { const el = log(); if (el) el.scrollTop = el.scrollHeight; };
  document.addEventListener("htmx:wsBeforeMessage", () => { follow = follow || nearBottom(log()); });
  document.addEventListener("htmx:wsAfterMessage", () => { if (follow) toBottom(); follow = false; });
  document.addEventListener("htmx:wsAfterSend", (event) => {
    if (event.target.id !== "chat-form") return;
    event.target.reset();
    showSize();
    follow = true;
  });

  // Enter sends, Shift+Enter adds a line (and so does Enter while an input method composes); Escape stops a reply.
  document.addEventListener("keydown", (event) => {
    const stop = document.getElementById("chat-stop");
    if (event.key === "Escape" && stop && !stop.hidden && event.target.closest?.("#chat")) return stop.click();
    if (event.target.id !== "chat-input" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    event.target.form.requestSubmit();
  });

  // The size against the limit, before sending: a message over it cannot be sent.
  function showSize() {
    const input = document.getElementById("chat-input"), size = document.getElementById("chat-size");
    if (!input || !size) return;
    const bytes = new TextEncoder().encode(input.value).length, limit = Number(input.dataset.maxBytes);
    const over = bytes > limit;
    const kb = (n) => (n / 1024).toFixed(1);
    input.setCustomValidity(over ? `This message is ${kb(bytes)} KB; the limit is ${limit / 1024} KB.` : "");
    size.classList.toggle("over", over);
    size.textContent = bytes > limit / 2
      ? `${kb(bytes)} of ${limit / 1024} KB${over ? ": too long to send" : ""}`
      : `Enter sends, Shift+Enter adds a line; ${size.dataset.limit}.`;
  }
  document.addEventListener("input", (event) => { if (event.target.id === "chat-input") showSize(); });

  // Each code block of a reply gets a Copy button of its own (core/chat/markdown.py draws the block; a streaming
  // reply redraws it).
  function codeButtons() {
    for (const block of document.querySelectorAll("#chat-log .md .code:not(:has(> .copy))")) {
      block.prepend(Object.assign(document.createElement("button"), {
        type: "button", className: "copy outline secondary", textContent: "Copy", ariaLabel: "Copy this code" }));
    }
  }
  document.addEventListener("htmx:wsAfterMessage", codeButtons);

  // Copy a reply's Markdown, or one code block's text.
  async function copy(text) {
    if (navigator.clipboard && isSecureContext) return navigator.clipboard.writeText(text);
    const scratch = Object.assign(document.createElement("textarea"), { value: text });  // plain http elsewhere
    document.body.append(scratch);
    scratch.select();
    document.execCommand("copy");
    scratch.remove();
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("#chat-log .copy");
    if (!button) return;
    const block = button.closest(".code");
    await copy(block ? block.querySelector("code").textContent : button.closest(".msg").dataset.markdown);
    const label = (button.dataset.label ??= button.ariaLabel);  // its name says what it shows: Copied, for a while
    button.textContent = button.ariaLabel = "Copied";
    setTimeout(() => { button.textContent = "Copy"; button.ariaLabel = label; }, 1500);
  });

  document.addEventListener("DOMContentLoaded", () => { fit(); codeButtons(); toBottom(); });
})();
