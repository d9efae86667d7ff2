"""The results browser: one self-contained HTML page per report that opens from disk
(file://, no server, no network) and shows every reply.

The page (`page.html` with `page.css` and `page.js` inlined) reads its data from plain scripts
beside it: `<page>_data/index.js` (one line per conversation or pair: what the list filters and
sorts on) and `<page>_data/cNNNN.js` chunks with the texts, each loaded by a `<script>` tag when
a row is opened (browsers block `fetch()` of file:// URLs; script tags are allowed). So the list
of 300 conversations x 6 models opens at once, and 6,000 conversations stay usable: only the
index is read up front. Model text is placed with `textContent`, never parsed as HTML.
"""

from rgen_harness.report_page.judge import write_judge_page
from rgen_harness.report_page.study import write_study_page

__all__ = ["write_judge_page", "write_study_page"]
