# smartpay-sim: the SmartPay gateway simulator.
