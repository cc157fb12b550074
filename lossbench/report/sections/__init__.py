"""The report's sections, one module per section or per group of closely related ones.

Each section is a function ``section(ctx)`` that appends its blocks to ``ctx.doc``; ``ReportContext``
(:mod:`.context`) carries what they share, :mod:`.formatting` how numbers are written.
``lossbench.report.build.ReportBuilder`` calls them in document order.
"""
