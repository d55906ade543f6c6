package main

func issuanceSection(e *env, cfg Config, s *Section) {
	e.Skipf("the authserver has not landed yet")
}
