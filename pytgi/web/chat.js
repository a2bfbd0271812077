// pytgi's chat page: streams answers from this server's OpenAI-compatible
// POST /v1/chat/completions. No framework and no build step: plain DOM calls.
//
// A turn goes into the conversation history sent with the next request only
// when it got an answer, so the history always alternates user / assistant
// (chat templates often insist on that).

const CHAT_URL = "v1/chat/completions"; // relative: works behind a proxy's path prefix
const INFO_URL = "info";
const API_KEY_STORAGE = "pytgi.apiKey"; // sessionStorage: the key dies with the tab

const ui = {
  modelId: document.getElementById("model-id"),
  limits: document.getElementById("limits"),
  newChat: document.getElementById("new-chat"),
  settings: document.getElementById("settings"),
  systemPrompt: document.getElementById("system-prompt"),
  temperature: document.getElementById("temperature"),
  topP: document.getElementById("top-p"),
  maxNewTokens: document.getElementById("max-new-tokens"),
  seed: document.getElementById("seed"),
  messages: document.getElementById("messages"),
  emptyHint: document.getElementById("empty-hint"),
  keyForm: document.getElementById("api-key-form"),
  keyInput: document.getElementById("api-key"),
  keyNote: document.getElementById("api-key-note"),
  composer: document.getElementById("composer"),
  prompt: document.getElementById("prompt"),
  send: document.getElementById("send"),
  stop: document.getElementById("stop"),
};

const state = {
  history: [], // [{role, content}] of answered turns; replaced (not emptied) by "New chat"
  serverInfo: null, // GET /info, once it answered
  controller: null, // AbortController of the answer being streamed
  retryAfterKey: null, // the turn to send again once the user gave an API key
};

// --- server info ----------------------------------------------------------------------

async function loadServerInfo() {
  try {
    const response = await fetch(INFO_URL);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    showServerInfo(await response.json());
  } catch (error) {
    ui.modelId.textContent = "server unreachable";
    ui.limits.textContent = `GET /info failed: ${error.message}`;
  }
}

function showServerInfo(info) {
  state.serverInfo = info;
  ui.modelId.textContent = info.model_id;
  ui.limits.textContent =
    `max input ${info.max_input_tokens} tokens · max total ${info.max_total_tokens} tokens · ` +
    `${info.max_concurrent_requests} concurrent requests` + (info.version ? ` · v${info.version}` : "");
  // A hint for the spinner; the server's validation stays the authority.
  ui.maxNewTokens.max = String(info.max_total_tokens - 1);
}

// --- API key --------------------------------------------------------------------------

function storedApiKey() {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE);
  } catch {
    return null; // storage disabled (some private modes): the user is asked again each time
  }
}

function authHeaders() {
  const key = storedApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function askForApiKey(retry) {
  const refused = storedApiKey() !== null;
  if (refused) sessionStorage.removeItem(API_KEY_STORAGE);
  ui.keyNote.textContent = refused ? "The server refused that key." : "";
  state.retryAfterKey = retry;
  ui.keyForm.hidden = false;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

function onApiKeySubmit(event) {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  try {
    sessionStorage.setItem(API_KEY_STORAGE, key);
  } catch {
    ui.keyNote.textContent = "This browser does not allow storing the key.";
    return;
  }
  ui.keyForm.hidden = true;
  const retry = state.retryAfterKey;
  state.retryAfterKey = null;
  if (retry) retry();
}

// --- the request ----------------------------------------------------------------------

// A blank field means "server default", so the field is left out of the request.
function optionalNumber(input) {
  const text = input.value.trim();
  return text === "" ? undefined : Number(text);
}

function requestBody(history) {
  const system = ui.systemPrompt.value.trim();
  const messages = system ? [{ role: "system", content: system }, ...history] : [...history];
  return {
    model: state.serverInfo?.model_id,
    messages,
    stream: true,
    stream_options: { include_usage: true }, // the final chunk then carries the token count
    temperature: optionalNumber(ui.temperature),
    top_p: optionalNumber(ui.topP),
    max_tokens: optionalNumber(ui.maxNewTokens),
    seed: optionalNumber(ui.seed),
  };
}

// An HTTP error answered before the stream started (JSON `{"error", "error_type"}`).
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function httpError(response) {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text);
    return new HttpError(response.status, typeof error === "string" ? error : (error?.message ?? text));
  } catch {
    return new HttpError(response.status, text.slice(0, 300) || response.statusText);
  }
}

function describeServerError(status, message) {
  if (status === 429) return `The server is overloaded (429): ${message}. Try again in a moment.`;
  if (status === 422 || status === 400) return `The server rejected the request (${status}): ${message}`;
  if (status === 413) return `The conversation is too large for the server (413): ${message}`;
  return `Server error ${status}: ${message}`;
}

// --- server-sent events ---------------------------------------------------------------

// Splits a text/event-stream into the data of its events: `data:` lines, a blank line ends an
// event, `:` lines are keep-alive comments. A network read may end mid-line, so the unfinished
// line waits for the next read.
class SseParser {
  constructor() {
    this.partialLine = "";
    this.dataLines = [];
  }

  feed(text) {
    const lines = (this.partialLine + text).split("\n");
    this.partialLine = lines.pop();
    const events = [];
    for (const rawLine of lines) {
      const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
      if (line === "") {
        if (this.dataLines.length) events.push(this.dataLines.join("\n"));
        this.dataLines = [];
      } else if (line.startsWith("data:")) {
        this.dataLines.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
    return events;
  }
}

async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield* parser.feed(value);
    }
  } finally {
    // The caller may stop early (an error event): release the connection rather than leave it unread.
    reader.cancel().catch(() => {});
  }
}

// --- timing ---------------------------------------------------------------------------

// Time to first token counts from sending the request (queueing + prefill); tokens/s counts
// the tokens after the first over the time since it, i.e. the decoding speed the user sees.
class AnswerClock {
  constructor() {
    this.sentMs = performance.now();
    this.firstMs = null;
    this.lastMs = null;
    this.numTokens = 0;
  }

  tokenArrived() {
    const now = performance.now();
    this.firstMs ??= now;
    this.lastMs = now;
    this.numTokens += 1;
  }

  summary() {
    if (this.firstMs === null) return "";
    const parts = [`TTFT ${Math.round(this.firstMs - this.sentMs)} ms`];
    const decodeS = (this.lastMs - this.firstMs) / 1000;
    if (this.numTokens > 1 && decodeS > 0) parts.push(`${((this.numTokens - 1) / decodeS).toFixed(1)} tokens/s`);
    parts.push(`${this.numTokens} token${this.numTokens === 1 ? "" : "s"}`);
    return parts.join(" · ");
  }
}

// --- streaming one answer -------------------------------------------------------------

// Resolves to the outcome of the answer: {kind: "finished", finishReason} | {kind: "stopped"} |
// {kind: "error", message} | {kind: "unauthorized"}; never throws.
async function streamAnswer(body, reply, signal) {
  const clock = new AnswerClock();
  try {
    const response = await fetch(CHAT_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders() },
      body: JSON.stringify(body),
      signal,
    });
    if (response.status === 401) return { kind: "unauthorized" };
    if (!response.ok) throw await httpError(response);
    return await readChunks(response.body, reply, clock);
  } catch (error) {
    if (signal.aborted) return { kind: "stopped" };
    if (error instanceof HttpError) return { kind: "error", message: describeServerError(error.status, error.message) };
    const where = reply.text.textContent ? "The connection broke mid-answer" : "Could not reach the server";
    return { kind: "error", message: `${where} (${error.message}). Is it still running?` };
  } finally {
    reply.stats.textContent = clock.summary();
  }
}

async function readChunks(body, reply, clock) {
  let finishReason = null;
  for await (const data of sseEvents(body)) {
    if (data === "[DONE]") return { kind: "finished", finishReason };
    const chunk = JSON.parse(data);
    if (chunk.error) {
      const { http_status_code: status, message } = chunk.error;
      return { kind: "error", message: describeServerError(status ?? 500, message) };
    }
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content !== undefined && choice.delta.content !== null) {
      clock.tokenArrived();
      appendText(reply, choice.delta.content);
      reply.stats.textContent = clock.summary();
    }
    finishReason = choice?.finish_reason ?? finishReason;
    // The usage chunk's count is exact (a token can decode to no text and send no chunk).
    if (chunk.usage) clock.numTokens = chunk.usage.completion_tokens;
  }
  throw new Error("the stream ended without [DONE]");
}

// --- the conversation view ------------------------------------------------------------

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text; // text, never HTML: the model's output cannot inject markup
  const stats = document.createElement("div");
  stats.className = "stats";
  item.append(body, stats);
  if (role === "error") item.setAttribute("role", "alert");
  ui.messages.append(item);
  ui.emptyHint.hidden = true;
  scrollToEnd(true);
  return { item, text: body, stats };
}

function appendText(view, text) {
  const follow = isScrolledToEnd();
  view.item.classList.remove("waiting");
  view.text.append(text);
  scrollToEnd(follow);
}

function isScrolledToEnd() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

// Follows the answer only when the user has not scrolled up to read something older.
function scrollToEnd(follow) {
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

// Finish reasons worth a note; "stop" (end of answer or a stop sequence) is the normal case.
const FINISH_NOTES = new Map([["length", "stopped at the max new tokens limit"]]);

function settleReply(reply, outcome) {
  reply.item.classList.remove("waiting");
  const notes = [reply.stats.textContent];
  if (outcome.kind === "stopped") notes.push("stopped");
  if (outcome.kind === "finished") notes.push(FINISH_NOTES.get(outcome.finishReason));
  reply.stats.textContent = notes.filter(Boolean).join(" · ");
}

function setStreaming(streaming) {
  document.body.dataset.state = streaming ? "streaming" : "idle";
  ui.send.hidden = streaming;
  ui.stop.hidden = !streaming;
  if (!streaming) ui.prompt.focus();
}

// --- turns ----------------------------------------------------------------------------

async function sendTurn(history, userTurn, userView) {
  const reply = addMessage("assistant", "");
  reply.item.classList.add("waiting");
  const controller = new AbortController();
  state.controller = controller;
  setStreaming(true);
  const outcome = await streamAnswer(requestBody([...history, userTurn]), reply, controller.signal);
  state.controller = null;
  setStreaming(false);
  if (outcome.kind === "unauthorized") {
    reply.item.remove();
    askForApiKey(() => sendTurn(history, userTurn, userView));
    return;
  }
  settleReply(reply, outcome);
  recordTurn(history, userTurn, userView, reply, outcome);
}

// Keeps the turn in the history when it got an answer (a stopped answer counts: the user saw
// it); otherwise hands the prompt back to the composer so it can be sent again.
function recordTurn(history, userTurn, userView, reply, outcome) {
  const answer = reply.text.textContent;
  if (outcome.kind === "error") addMessage("error", outcome.message);
  if (answer && outcome.kind !== "error") {
    history.push(userTurn, { role: "assistant", content: answer });
    return;
  }
  if (!answer) reply.item.remove();
  userView.item.classList.add("unanswered");
  userView.stats.textContent = "not answered: not part of the conversation";
  if (history === state.history && ui.prompt.value === "") ui.prompt.value = userTurn.content;
}

function onSubmit(event) {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text || state.controller) return;
  ui.prompt.value = "";
  const userTurn = { role: "user", content: text };
  sendTurn(state.history, userTurn, addMessage("user", text));
}

function onPromptKeyDown(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
}

function stopAnswer() {
  state.controller?.abort(); // the server sees the disconnect and aborts the generation
}

function newConversation() {
  stopAnswer();
  state.history = []; // a new array: a turn still settling writes into the old one
  state.retryAfterKey = null;
  ui.keyForm.hidden = true;
  ui.messages.replaceChildren();
  ui.emptyHint.hidden = false;
  ui.prompt.focus();
}

function init() {
  ui.composer.addEventListener("submit", onSubmit);
  ui.prompt.addEventListener("keydown", onPromptKeyDown);
  ui.stop.addEventListener("click", stopAnswer);
  ui.newChat.addEventListener("click", newConversation);
  ui.keyForm.addEventListener("submit", onApiKeySubmit);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") stopAnswer();
  });
  // On a phone the settings would push the conversation off the screen: start them folded.
  if (window.matchMedia("(max-width: 799px)").matches) ui.settings.open = false;
  loadServerInfo();
  ui.prompt.focus();
}

init();
