package esptest

// fakes is the table of platform fakes: ONE line per platform. Adding a platform's fake = its file
// esptest/<slug>.go defining <slug>Spec() and setting its line here. The contract suite (esp/contract_test.go)
// runs every platform that has both an adapter (esp registry New != nil) and a fake here.
func fakes() map[string]func() Spec {
	return map[string]func() Spec{
		"klaviyo":         klaviyoSpec,
		"mailchimp":       mailchimpSpec,
		"brevo":           brevoSpec,
		"activecampaign":  activecampaignSpec,
		"convertkit":      convertkitSpec,
		"mailerlite":      mailerliteSpec,
		"getresponse":     getresponseSpec,
		"campaignmonitor": campaignmonitorSpec,
		"constantcontact": constantcontactSpec,
		"drip":            dripSpec,
		"gist":            gistSpec,
		"hubspot":         hubspotSpec,
		"keap":            keapSpec,
		"moosend":         moosendSpec,
		"ontraport":       ontraportSpec,
		"sendlane":        sendlaneSpec,
		"iterable":        iterableSpec,
		"customerio":      customerioSpec,
	}
}

// Lookup returns the fake Spec of a platform.
func Lookup(slug string) (Spec, bool) {
	f := fakes()[slug]
	if f == nil {
		return Spec{}, false
	}
	return f(), true
}
