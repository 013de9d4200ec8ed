"""``thresher report``: one self-contained HTML page of a run (or two runs compared).

``page`` loads the run and assembles the page; ``sections`` and ``dists`` render its
tables and histograms; ``html`` holds the CSS and escaping helpers; ``svgplot`` draws
charts as inline SVG. Nothing here is imported by a task: reports read finished runs.
"""
