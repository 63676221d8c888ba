"""Pictures and pages for people: the frame-to-frame heatmap PNG, and the HTML review report (document.py: what
a report shows; page.py: the page; compare_review, search_review, evaluate_review, saved_results: who builds it)."""
