// feedsvc pages: local dates, the directory filter, copy buttons. No framework; served from
// /static so the pages' Content-Security-Policy (script-src 'self') allows it.
"use strict";

function localDates() {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const node of document.querySelectorAll("time[data-local]")) {
    const moment = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      node.textContent = format.format(moment);
      node.title = "Original: " + node.getAttribute("datetime");
    }
  }
}

function matches(item, words) {
  const name = item.querySelector(".name");
  return name !== null && name.textContent.toLowerCase().includes(words);
}

function filterDirectory(input) {
  const words = input.value.trim().toLowerCase();
  const items = Array.from(document.querySelectorAll("[data-filter-item]")).reverse();
  // innermost first: a category stays visible when one of its sub-categories matches
  for (const item of items) {
    const childShown = Array.from(item.querySelectorAll("[data-filter-item]")).some(
      (child) => !child.hidden
    );
    item.hidden = words !== "" && !matches(item, words) && !childShown;
    const details = item.querySelector(":scope > details");
    if (details !== null && words !== "") {
      details.open = childShown;
    }
  }
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch {
        const field = button.parentElement.querySelector("input");
        field.select(); // the reader can copy the selected address by hand
        button.textContent = "Select and copy";
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localDates();
  copyButtons();
  const filter = document.getElementById("filter");
  if (filter !== null) {
    filter.addEventListener("input", () => filterDirectory(filter));
  }
});
