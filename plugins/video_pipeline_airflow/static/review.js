// The review page's one script (no inline script: the page's Content-Security-Policy forbids it). It answers
// the gate through Airflow's own HITL API, as the logged-in user (the UI's cookie goes along, same origin), so
// Airflow's permissions, first-answer-wins and audit apply. Text from the page is only ever read or set as
// text (value, textContent), never as HTML. The one HTML it adds is more segment cards from the page's own
// route (the server's rendering, every piece of user text escaped as in the page; the page's
// Content-Security-Policy would refuse any script in it), parsed inert by DOMParser and moved in.
"use strict";

(function () {
  const main = document.getElementById("review");
  if (!main) {
    return;
  }
  loadSegmentsOnScroll();
  if (main.dataset.waiting !== "true") {
    return;
  }
  const hitlUrl = main.dataset.hitl;
  const status = document.getElementById("status");
  const buttons = Array.from(document.querySelectorAll(".actions button"));

  function say(message, kind) {
    status.textContent = message;
    status.className = kind || "";
  }

  function picks() {
    // One choice per segment that has several takes; none when no segment has (the gate then keeps take 1).
    const chosen = {};
    let any = false;
    for (const radio of document.querySelectorAll("input.pick:checked")) {
      chosen[radio.dataset.index] = Number(radio.value);
      any = true;
    }
    return any ? chosen : null;
  }

  function redoRequest() {
    const segments = [];
    const prompts = [];
    for (const box of document.querySelectorAll("input.redo-box:checked")) {
      const index = Number(box.value);
      segments.push(index);
      const edit = document.getElementById("prompt-" + index);
      const prompt = edit ? edit.value.replace(/\s+/g, " ").trim() : "";
      if (edit && prompt && prompt !== edit.dataset.original.replace(/\s+/g, " ").trim()) {
        prompts.push(index + ": " + prompt);
      }
    }
    return { segments: segments, prompts: prompts };
  }

  async function whoAnswered() {
    try {
      const response = await fetch(hitlUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) {
        return null;
      }
      const detail = await response.json();
      const user = detail.responded_by_user;
      return (user && (user.name || user.id)) || "the pipeline (a Variable or a timeout)";
    } catch (error) {
      return null;
    }
  }

  async function answer(option, params) {
    buttons.forEach(function (b) { b.disabled = true; });
    say("Sending " + option + "…");
    const body = {
      chosen_options: [option],
      params_input: Object.assign(
        { segments: null, prompts: null, narrations: null, note: null, source: "review-page" },
        params
      ),
    };
    const note = document.getElementById("note").value.trim();
    if (note) {
      body.params_input.note = note;
    }
    const chosen = picks();
    if (chosen) {
      body.params_input.picks = chosen;
    }
    let response;
    try {
      response = await fetch(hitlUrl, {
        method: "PATCH",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      buttons.forEach(function (b) { b.disabled = false; });
      say("Could not reach Airflow: " + error, "error");
      return;
    }
    if (response.ok) {
      main.dataset.waiting = "false";
      say(option + " sent. The gate goes on in a few seconds; reload to follow it.", "ok");
      return;
    }
    if (response.status === 409) {
      const by = await whoAnswered();
      say("This gate was already answered" + (by ? " by " + by : "") + ". Reload to see it.", "error");
      return;
    }
    buttons.forEach(function (b) { b.disabled = false; });
    if (response.status === 401) {
      say("Your login has expired: log in to Airflow again, then reload.", "error");
    } else if (response.status === 403) {
      say("You may look at this gate but not answer it (Airflow refused: 403).", "error");
    } else {
      say("Airflow refused the answer (" + response.status + ").", "error");
    }
  }

  document.getElementById("approve").addEventListener("click", function () {
    answer("Approve", {});
  });
  document.getElementById("reject").addEventListener("click", function () {
    answer("Reject", {});
  });
  document.getElementById("redo").addEventListener("click", function () {
    const request = redoRequest();
    if (request.segments.length === 0) {
      say("Tick “Redo” on the segments to regenerate first.", "error");
      return;
    }
    answer("Redo segments", {
      segments: request.segments,
      prompts: request.prompts.length ? request.prompts : null,
    });
  });
  // Editing a prompt means redoing that segment (also in the segments added later: one listener on the page).
  main.addEventListener("input", function (event) {
    const edit = event.target;
    if (!edit.matches || !edit.matches("textarea.redo-prompt")) {
      return;
    }
    const box = document.getElementById("redo-" + edit.dataset.index);
    if (box) {
      box.checked = true;
    }
  });

  // The page holds the first segments; the others come a page at a time when the reviewer scrolls near the
  // end (or clicks the button), added below, so what was ticked, picked or typed stays as it is.
  function loadSegmentsOnScroll() {
    const more = document.getElementById("more");
    if (!more) {
      return;
    }
    const grid = more.parentElement.querySelector(".grid");
    const button = document.getElementById("load-more");
    const margin = 1500; // px below the viewport: fetch before the reviewer gets there
    let loading = false;

    function near() {
      return more.dataset.next !== "" && more.getBoundingClientRect().top < window.innerHeight + margin;
    }

    async function loadMore() {
      if (loading || more.dataset.next === "") {
        return;
      }
      loading = true;
      button.disabled = true;
      const label = button.textContent;
      button.textContent = "Loading…";
      try {
        const response = await fetch(more.dataset.url + "?start=" + encodeURIComponent(more.dataset.next), {
          credentials: "same-origin",
          headers: { Accept: "text/html" },
        });
        if (!response.ok) {
          throw new Error("Airflow answered " + response.status);
        }
        const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
        const chunk = parsed.getElementById("chunk");
        for (const card of Array.from(chunk.querySelectorAll(":scope > article.segment"))) {
          grid.appendChild(document.adoptNode(card));
        }
        more.dataset.next = chunk.dataset.next;
        button.textContent = chunk.dataset.label;
        if (more.dataset.next === "") {
          more.remove();
        }
      } catch (error) {
        button.textContent = label + " (could not load: " + error.message + "; try again)";
      } finally {
        loading = false;
        button.disabled = false;
      }
      if (near()) {
        loadMore();
      }
    }

    button.addEventListener("click", loadMore);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) {
          loadMore();
        }
      }, { rootMargin: "0px 0px " + margin + "px 0px" }).observe(more);
    }
  }
})();
