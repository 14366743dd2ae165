"""Data contracts: Great Expectations suites kept in the repository, run against files."""
