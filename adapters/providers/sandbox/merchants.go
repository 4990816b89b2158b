package sandbox

// merchant is where a card purchase happens.
type merchant struct {
	name, category, city string
	// min and max bound the purchase in cents.
	min, max int64
	// weight is the merchant's share of purchases in its table.
	weight int64
	// tip: the posted amount adds a tip to the authorised one.
	tip bool
	// preauth: the pending amount is a fixed hold (a fuel pump's), the
	// posted one the real purchase.
	preauth int64
}

// householdMerchants are where the household's cards are used.
var householdMerchants = []merchant{
	{name: "Whole Foods Market", category: "groceries", city: "AUSTIN TX", min: 2000, max: 18000, weight: 14},
	{name: "Trader Joe's", category: "groceries", city: "AUSTIN TX", min: 1500, max: 12000, weight: 12},
	{name: "Blue Bottle Coffee", category: "coffee", city: "AUSTIN TX", min: 400, max: 1200, weight: 16},
	{name: "Shell", category: "fuel", city: "ROUND ROCK TX", min: 3000, max: 7500, weight: 7, preauth: 10000},
	{name: "Chipotle", category: "restaurants", city: "AUSTIN TX", min: 900, max: 2500, weight: 10},
	{name: "The Local Bistro", category: "restaurants", city: "AUSTIN TX", min: 3500, max: 12000, weight: 6, tip: true},
	{name: "Amazon", category: "online", city: "SEATTLE WA", min: 800, max: 15000, weight: 12},
	{name: "Target", category: "general", city: "AUSTIN TX", min: 1200, max: 16000, weight: 8},
	{name: "CVS Pharmacy", category: "health", city: "AUSTIN TX", min: 500, max: 6000, weight: 5},
	{name: "Uber", category: "transport", city: "SAN FRANCISCO CA", min: 900, max: 4500, weight: 5},
	{name: "Spotify", category: "subscriptions", city: "NEW YORK NY", min: 1199, max: 1199, weight: 1},
	{name: "Home Depot", category: "home", city: "AUSTIN TX", min: 1500, max: 25000, weight: 4},
}

// operatingMerchants are where the operating accounts' cards are used.
var operatingMerchants = []merchant{
	{name: "Office Depot", category: "office", city: "BOCA RATON FL", min: 1500, max: 9000, weight: 10},
	{name: "UPS", category: "shipping", city: "ATLANTA GA", min: 1200, max: 8000, weight: 14},
	{name: "FedEx", category: "shipping", city: "MEMPHIS TN", min: 1200, max: 8000, weight: 12},
	{name: "Amazon Web Services", category: "cloud", city: "SEATTLE WA", min: 2000, max: 15000, weight: 6},
	{name: "Shell Fleet", category: "fuel", city: "HOUSTON TX", min: 4000, max: 9000, weight: 10, preauth: 15000},
	{name: "Staples", category: "office", city: "FRAMINGHAM MA", min: 800, max: 6000, weight: 8},
	{name: "Delta Air Lines", category: "travel", city: "ATLANTA GA", min: 9000, max: 19000, weight: 2},
	{name: "Costco Business Center", category: "wholesale", city: "ISSAQUAH WA", min: 5000, max: 14000, weight: 5},
	{name: "Client Dinner Grill", category: "restaurants", city: "DALLAS TX", min: 4000, max: 12000, weight: 3, tip: true},
	{name: "Google Ads", category: "advertising", city: "MOUNTAIN VIEW CA", min: 2500, max: 8000, weight: 6},
}

// merchantTables are indexed by the merchant table bit of a transaction.
var merchantTables = [2][]merchant{householdMerchants, operatingMerchants}

// merchantWeights are the cumulative weights of each table, for picking.
var merchantWeights = func() (w [2][]int64) {
	for i, tab := range merchantTables {
		var sum int64
		for _, m := range tab {
			sum += m.weight
			w[i] = append(w[i], sum)
		}
	}
	return w
}()

// pickMerchant returns an index into table t weighted by the merchants' weights.
func pickMerchant(t int, r *stream) int {
	cum := merchantWeights[t]
	x := r.intn(cum[len(cum)-1])
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}
