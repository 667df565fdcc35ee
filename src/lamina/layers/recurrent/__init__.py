"""Recurrent layers: LSTM, GRU, SimpleRNN and the Bidirectional wrapper, and RNN
for a cell (a user's, or SimpleRNNCell / LSTMCell / GRUCell), as Keras 3's."""

from lamina.layers.recurrent.bidirectional import Bidirectional
from lamina.layers.recurrent.cells import GRUCell, LSTMCell, SimpleRNNCell
from lamina.layers.recurrent.gru import GRU
from lamina.layers.recurrent.lstm import LSTM
from lamina.layers.recurrent.rnn import RNN, StackedRNNCells
from lamina.layers.recurrent.simple_rnn import SimpleRNN

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "StackedRNNCells", "SimpleRNNCell", "LSTMCell",
           "GRUCell"]
